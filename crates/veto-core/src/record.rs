//! The revocation record: what is revoked (its scope and keys), until when the
//! record matters, and who revoked it from where.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::hlc::Hlc;
use crate::id::{NodeId, RecordId};

/// The longest string key a record may carry, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// The longest `reason` or `actor`, in bytes.
pub const MAX_NOTE_BYTES: usize = 512;
/// The longest node name a `peer` record may carry, in bytes: the most a
/// certificate's common name or DNS name can hold.
pub const MAX_PEER_NAME_BYTES: usize = 255;

/// The kinds of revocation, as named on the HTTP API: six token scopes, and
/// `peer`, which revokes a node's certificate rather than any token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// One token, by (iss, jti) or by the SHA-256 of an opaque token.
    Token,
    /// Every token carrying one `sid`.
    Session,
    /// Every token of one subject issued before a cutoff.
    Subject,
    /// Every token of one client issued before a cutoff.
    Client,
    /// Every token of one issuer issued before a cutoff.
    Issuer,
    /// Every token signed with one key id.
    Key,
    /// A node's certificate, by its name or its SHA-256: no token matches it.
    Peer,
}

impl ScopeKind {
    /// All scopes, in the order the API lists them.
    pub const ALL: [ScopeKind; 7] = [
        ScopeKind::Token,
        ScopeKind::Session,
        ScopeKind::Subject,
        ScopeKind::Client,
        ScopeKind::Issuer,
        ScopeKind::Key,
        ScopeKind::Peer,
    ];

    /// The API name of the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Token => "token",
            ScopeKind::Session => "session",
            ScopeKind::Subject => "subject",
            ScopeKind::Client => "client",
            ScopeKind::Issuer => "issuer",
            ScopeKind::Key => "key",
            ScopeKind::Peer => "peer",
        }
    }

    /// Parses an API scope name.
    pub fn parse(name: &str) -> Option<ScopeKind> {
        ScopeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the scope is a cutoff (`before`) over many tokens.
    pub fn is_bulk(self) -> bool {
        matches!(
            self,
            ScopeKind::Subject | ScopeKind::Client | ScopeKind::Issuer
        )
    }

    /// Whether records of the scope revoke tokens: every scope but `peer`,
    /// which only ever refuses a node's certificate.
    pub fn revokes_tokens(self) -> bool {
        self != ScopeKind::Peer
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a record revokes. `iss: None` matches tokens of any issuer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// One JWT, by its `jti`.
    Token {
        /// Issuer the jti belongs to, or any.
        iss: Option<String>,
        /// The token's `jti` claim.
        jti: String,
    },
    /// One opaque token, by the SHA-256 of its full string, so that the store never
    /// holds a live credential.
    TokenHash {
        /// SHA-256 of the token string.
        sha256: [u8; 32],
    },
    /// Every token whose `sid` claim is this.
    Session {
        /// Issuer, or any.
        iss: Option<String>,
        /// The session id.
        sid: String,
    },
    /// Every token of `sub` with `iat < before`.
    Subject {
        /// Issuer, or any.
        iss: Option<String>,
        /// The subject.
        sub: String,
        /// The cutoff, Unix seconds.
        before: u64,
    },
    /// Every token of `client_id` with `iat < before`.
    Client {
        /// Issuer, or any.
        iss: Option<String>,
        /// The OAuth client id.
        client_id: String,
        /// The cutoff, Unix seconds.
        before: u64,
    },
    /// Every token of `iss` with `iat < before`.
    Issuer {
        /// The issuer: required for this scope.
        iss: String,
        /// The cutoff, Unix seconds.
        before: u64,
    },
    /// Every token whose header names this `kid`.
    Key {
        /// Issuer, or any.
        iss: Option<String>,
        /// The key id.
        kid: String,
    },
    /// A node's certificate: refused as a peer by every node that holds the
    /// record, by the name it proves (its common name), by its SHA-256, or
    /// by either when both are given. It matches no token. Appended last,
    /// so that the other variants keep their encoding on disk and on the wire.
    Peer {
        /// The node name, as its certificate's common name proves it.
        name: Option<String>,
        /// The SHA-256 of the certificate's DER encoding.
        cert_sha256: Option<[u8; 32]>,
    },
}

/// A [`Target`] that breaks the record limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A key or note is longer than allowed.
    #[error("field `{field}` is {len} bytes; the limit is {limit}")]
    TooLong {
        /// The field name.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A key is empty.
    #[error("field `{0}` must not be empty")]
    Empty(&'static str),
    /// A `peer` record names neither a name nor a certificate.
    #[error("scope `peer` needs `name`, `cert_sha256` or both")]
    NoPeerKey,
}

fn check_key(field: &'static str, value: &str) -> Result<(), TargetError> {
    if value.is_empty() {
        return Err(TargetError::Empty(field));
    }
    if value.len() > MAX_KEY_BYTES {
        return Err(TargetError::TooLong {
            field,
            len: value.len(),
            limit: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

fn check_peer(name: &Option<String>, cert_sha256: &Option<[u8; 32]>) -> Result<(), TargetError> {
    match (name, cert_sha256) {
        (None, None) => Err(TargetError::NoPeerKey),
        (Some(name), _) if name.is_empty() => Err(TargetError::Empty("name")),
        (Some(name), _) if name.len() > MAX_PEER_NAME_BYTES => Err(TargetError::TooLong {
            field: "name",
            len: name.len(),
            limit: MAX_PEER_NAME_BYTES,
        }),
        _ => Ok(()),
    }
}

fn check_iss(iss: &Option<String>) -> Result<(), TargetError> {
    iss.as_deref().map_or(Ok(()), |i| check_key("iss", i))
}

/// Checks a free-text note such as `reason` or `actor`.
pub fn check_note(field: &'static str, value: &str) -> Result<(), TargetError> {
    if value.len() > MAX_NOTE_BYTES {
        return Err(TargetError::TooLong {
            field,
            len: value.len(),
            limit: MAX_NOTE_BYTES,
        });
    }
    Ok(())
}

impl Target {
    /// The opaque-token target for a raw token string.
    pub fn opaque_token(token: &str) -> Target {
        Target::TokenHash {
            sha256: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// The scope this target belongs to.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Target::Token { .. } | Target::TokenHash { .. } => ScopeKind::Token,
            Target::Session { .. } => ScopeKind::Session,
            Target::Subject { .. } => ScopeKind::Subject,
            Target::Client { .. } => ScopeKind::Client,
            Target::Issuer { .. } => ScopeKind::Issuer,
            Target::Key { .. } => ScopeKind::Key,
            Target::Peer { .. } => ScopeKind::Peer,
        }
    }

    /// The issuer the target is limited to, if any.
    pub fn iss(&self) -> Option<&str> {
        match self {
            Target::Token { iss, .. }
            | Target::Session { iss, .. }
            | Target::Subject { iss, .. }
            | Target::Client { iss, .. }
            | Target::Key { iss, .. } => iss.as_deref(),
            Target::Issuer { iss, .. } => Some(iss),
            Target::TokenHash { .. } | Target::Peer { .. } => None,
        }
    }

    /// The cutoff of a bulk scope.
    pub fn before(&self) -> Option<u64> {
        match self {
            Target::Subject { before, .. }
            | Target::Client { before, .. }
            | Target::Issuer { before, .. } => Some(*before),
            _ => None,
        }
    }

    /// Checks the length limits of every key.
    pub fn validate(&self) -> Result<(), TargetError> {
        match self {
            Target::Token { iss, jti } => check_iss(iss).and(check_key("jti", jti)),
            Target::TokenHash { .. } => Ok(()),
            Target::Session { iss, sid } => check_iss(iss).and(check_key("sid", sid)),
            Target::Subject { iss, sub, .. } => check_iss(iss).and(check_key("sub", sub)),
            Target::Client { iss, client_id, .. } => {
                check_iss(iss).and(check_key("client_id", client_id))
            }
            Target::Issuer { iss, .. } => check_key("iss", iss),
            Target::Key { iss, kid } => check_iss(iss).and(check_key("kid", kid)),
            Target::Peer { name, cert_sha256 } => check_peer(name, cert_sha256),
        }
    }
}

/// One revocation, as stored and replicated. Immutable once created: the same
/// [`RecordId`] always names the same content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    /// Origin node and sequence number.
    pub id: RecordId,
    /// The hybrid logical clock stamp taken at the origin.
    pub hlc: Hlc,
    /// What is revoked.
    pub target: Target,
    /// Unix seconds after which the record can no longer match a live token.
    pub expires_at: u64,
    /// Why, for the audit trail.
    pub reason: String,
    /// Who, for the audit trail.
    pub actor: String,
}

impl Record {
    /// The origin node.
    pub fn origin(&self) -> NodeId {
        self.id.origin
    }

    /// Unix seconds at which the origin revoked it (the HLC's physical part).
    pub fn revoked_at(&self) -> u64 {
        self.hlc.unix_secs()
    }

    /// A stable 256-bit fingerprint of the whole record, used by the set digest.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.id.origin.get().to_le_bytes());
        h.update(self.id.seq.to_le_bytes());
        h.update(self.hlc.0.to_le_bytes());
        h.update(self.expires_at.to_le_bytes());
        let text = |h: &mut Sha256, s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        let opt = |h: &mut Sha256, s: &Option<String>| match s {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                text(h, s)
            }
        };
        match &self.target {
            Target::Token { iss, jti } => {
                h.update([0u8]);
                opt(&mut h, iss);
                text(&mut h, jti);
            }
            Target::TokenHash { sha256 } => {
                h.update([1u8]);
                h.update(sha256);
            }
            Target::Session { iss, sid } => {
                h.update([2u8]);
                opt(&mut h, iss);
                text(&mut h, sid);
            }
            Target::Subject { iss, sub, before } => {
                h.update([3u8]);
                opt(&mut h, iss);
                text(&mut h, sub);
                h.update(before.to_le_bytes());
            }
            Target::Client {
                iss,
                client_id,
                before,
            } => {
                h.update([4u8]);
                opt(&mut h, iss);
                text(&mut h, client_id);
                h.update(before.to_le_bytes());
            }
            Target::Issuer { iss, before } => {
                h.update([5u8]);
                text(&mut h, iss);
                h.update(before.to_le_bytes());
            }
            Target::Key { iss, kid } => {
                h.update([6u8]);
                opt(&mut h, iss);
                text(&mut h, kid);
            }
            Target::Peer { name, cert_sha256 } => {
                h.update([7u8]);
                opt(&mut h, name);
                match cert_sha256 {
                    None => h.update([0u8]),
                    Some(sha) => {
                        h.update([1u8]);
                        h.update(sha);
                    }
                }
            }
        }
        text(&mut h, &self.reason);
        text(&mut h, &self.actor);
        h.finalize().into()
    }
}

/// A revocation as asked for, before the node stamps it with origin, seq and HLC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// What to revoke.
    pub target: Target,
    /// When the record stops mattering, Unix seconds.
    pub expires_at: u64,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
}

impl Revocation {
    /// Turns the request into a record with its origin identity and stamp.
    pub fn into_record(self, id: RecordId, hlc: Hlc) -> Record {
        Record {
            id,
            hlc,
            target: self.target,
            expires_at: self.expires_at,
            reason: self.reason,
            actor: self.actor,
        }
    }
}
