//! A revocation as a client asks for it (`POST /v1/revocations`, the batch
//! endpoint, the CLI and the Rust client all send this shape), and the rules
//! that turn it into a [`Revocation`] with its defaults.
//!
//! - `token` scope takes `jti` (with an optional `iss`) or `token` (an opaque
//!   token, kept only as its SHA-256); `session` takes `sid`, `subject` `sub`,
//!   `client` `client_id`, `issuer` `iss`, `key` `kid`. A key that does not
//!   belong to the scope is refused rather than ignored, so that a typo never
//!   revokes something other than what was meant.
//! - `peer` scope takes `name` (a node name as its certificate's common name
//!   proves it, at most 255 bytes) and/or `cert_sha256` (the SHA-256 of the
//!   DER certificate, 64 hex digits): every node refuses that certificate as
//!   a peer. It revokes no token. Its `expires_at` defaults to the latest
//!   accepted ([`MAX_EXPIRY_HORIZON`] ahead), beyond the life of any
//!   certificate `veto cert node` makes, so that the refusal outlives the
//!   certificate; give the certificate's `notAfter` to have it collected sooner.
//! - Bulk scopes (`subject`, `client`, `issuer`) take `before`. Its default is
//!   the node's clock ([`Cutoffs::now`]) plus the maximum clock offset, plus
//!   one second (`iat` is whole seconds): every token issued before the
//!   revocation is acknowledged is covered, as long as the issuers' clocks are
//!   within the maximum offset of this node's. A `before` later than that
//!   default is refused: a cutoff in the future would revoke tokens not yet
//!   issued.
//! - Their `expires_at` defaults to `before` plus the maximum token lifetime
//!   (but not earlier than now). Other scopes default `expires_at` to now plus
//!   the maximum token lifetime. An explicit `expires_at` in the past, or more
//!   than [`MAX_EXPIRY_HORIZON`] ahead, is refused: such a record would never
//!   be collected.
//! - `reason` defaults to `""` and `actor` to [`DEFAULT_ACTOR`].

use serde::{Deserialize, Deserializer, Serialize};

use crate::jwt::MAX_TOKEN_BYTES;
use crate::record::check_note;
use crate::{Revocation, ScopeKind, Target};

/// The actor recorded when a request names none.
pub const DEFAULT_ACTOR: &str = "admin";

/// How far ahead of now an explicit `expires_at` may lie: ten years.
pub const MAX_EXPIRY_HORIZON: u64 = 10 * 366 * 86_400;

/// A request that cannot become a revocation; the message says why, for a
/// 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

/// The clock facts a revocation's defaults and bounds come from, in Unix
/// seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cutoffs {
    /// Now, by the node's clock (see the node's docs for which clock).
    pub now: u64,
    /// The longest a token may live.
    pub max_lifetime: u64,
    /// The maximum clock offset between this node and the issuers, rounded up.
    pub max_offset: u64,
}

impl Cutoffs {
    /// The default `before` of a bulk scope, and the latest one accepted.
    pub fn latest_before(&self) -> u64 {
        self.now.saturating_add(self.max_offset).saturating_add(1)
    }

    /// The latest `expires_at` accepted.
    pub fn latest_expiry(&self) -> u64 {
        self.now.saturating_add(MAX_EXPIRY_HORIZON)
    }
}

/// One revocation as a client asks for it: the JSON body of
/// `POST /v1/revocations`. Unknown fields are refused.
///
/// ```
/// use veto_core::request::RevokeRequest;
/// use veto_core::ScopeKind;
/// let req = RevokeRequest::new(ScopeKind::Subject)
///     .iss("https://idp.example")
///     .sub("alice")
///     .reason("laptop stolen");
/// assert_eq!(req.scope, "subject");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// The scope: token, session, subject, client, issuer, key or peer.
    pub scope: String,
    /// Issuer; absent means any issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token id, for `token` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Session id, for `session` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Subject, for `subject` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// OAuth client id, for `client` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Key id, for `key` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// An opaque token, for `token` scope; the node keeps only its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A node name (its certificate's common name), for `peer` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The SHA-256 of a node's DER certificate, 64 hex digits, for `peer`
    /// scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// Cutoff of a bulk scope, Unix seconds: tokens issued before it are
    /// revoked (default: now).
    #[serde(
        default,
        deserialize_with = "de_before",
        skip_serializing_if = "Option::is_none"
    )]
    pub before: Option<u64>,
    /// When the record stops mattering, Unix seconds.
    #[serde(
        default,
        deserialize_with = "de_expires_at",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<u64>,
    /// Why, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

macro_rules! setters {
    ($($field:ident),*) => {$(
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        // `sub` is the JWT claim's name, not subtraction.
        #[allow(clippy::should_implement_trait)]
        pub fn $field(mut self, value: impl Into<String>) -> RevokeRequest {
            self.$field = Some(value.into());
            self
        }
    )*};
}

impl RevokeRequest {
    /// A request of this scope with no keys yet.
    pub fn new(scope: ScopeKind) -> RevokeRequest {
        RevokeRequest {
            scope: scope.as_str().to_owned(),
            ..RevokeRequest::default()
        }
    }

    setters!(
        iss,
        jti,
        token,
        sid,
        sub,
        client_id,
        kid,
        name,
        cert_sha256,
        reason,
        actor
    );

    /// Sets the cutoff of a bulk scope.
    pub fn before(mut self, unix_secs: u64) -> RevokeRequest {
        self.before = Some(unix_secs);
        self
    }

    /// Sets when the record stops mattering.
    pub fn expires_at(mut self, unix_secs: u64) -> RevokeRequest {
        self.expires_at = Some(unix_secs);
        self
    }
}

/// The valid scopes, as listed in error messages.
const SCOPE_LIST: &str = "token, session, subject, client, issuer, key, peer";

/// Unix seconds as a JSON integer, with an error that names the field.
fn unix_secs<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Option<u64>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64()),
        other => Err(serde::de::Error::custom(format!(
            "`{field}` must be Unix seconds as a non-negative integer, not {other}"
        ))),
    }
}

fn de_before<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unix_secs(d, "before")
}

fn de_expires_at<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unix_secs(d, "expires_at")
}

/// The target of a `peer` request: a name, a certificate fingerprint, or both.
fn peer_target(name: Option<String>, cert_sha256: Option<&str>) -> Result<Target, String> {
    if name.is_none() && cert_sha256.is_none() {
        return Err(
            "scope `peer` needs `name` (a node's certificate name), `cert_sha256` (the SHA-256 \
             of its certificate, hex) or both"
                .into(),
        );
    }
    let cert_sha256 = match cert_sha256 {
        None => None,
        Some(hex) => Some(parse_sha256(hex).ok_or_else(|| {
            format!(
                "field `cert_sha256` must be the certificate's SHA-256 as exactly 64 hex digits, \
                 not {} characters",
                hex.chars().count()
            )
        })?),
    };
    let target = Target::Peer { name, cert_sha256 };
    target.validate().map_err(|e| e.to_string())?;
    Ok(target)
}

/// 64 hex digits (either case) as 32 bytes.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut sha = [0u8; 32];
    hex::decode_to_slice(hex, &mut sha).ok()?;
    Some(sha)
}

fn take(field: Option<String>, name: &str, scope: ScopeKind) -> Result<String, String> {
    field.ok_or_else(|| format!("scope `{scope}` needs `{name}`"))
}

impl RevokeRequest {
    /// The key fields that were given, by name.
    fn given_keys(&self) -> [(&'static str, bool); 9] {
        [
            ("iss", self.iss.is_some()),
            ("jti", self.jti.is_some()),
            ("token", self.token.is_some()),
            ("sid", self.sid.is_some()),
            ("sub", self.sub.is_some()),
            ("client_id", self.client_id.is_some()),
            ("kid", self.kid.is_some()),
            ("name", self.name.is_some()),
            ("cert_sha256", self.cert_sha256.is_some()),
        ]
    }

    /// Checks the request and fills in its defaults.
    pub fn into_revocation(self, cutoffs: &Cutoffs) -> Result<Revocation, InvalidRequest> {
        self.check(cutoffs).map_err(InvalidRequest)
    }

    fn check(self, cutoffs: &Cutoffs) -> Result<Revocation, String> {
        let (now, max_lifetime) = (cutoffs.now, cutoffs.max_lifetime);
        let scope = ScopeKind::parse(&self.scope).ok_or_else(|| {
            format!(
                "unknown scope {:?}; valid scopes are {SCOPE_LIST}",
                self.scope
            )
        })?;
        let allowed: &[&str] = match scope {
            ScopeKind::Token => &["iss", "jti", "token"],
            ScopeKind::Session => &["iss", "sid"],
            ScopeKind::Subject => &["iss", "sub"],
            ScopeKind::Client => &["iss", "client_id"],
            ScopeKind::Issuer => &["iss"],
            ScopeKind::Key => &["iss", "kid"],
            ScopeKind::Peer => &["name", "cert_sha256"],
        };
        if let Some((name, _)) = self
            .given_keys()
            .into_iter()
            .find(|(name, given)| *given && !allowed.contains(name))
        {
            return Err(format!("field `{name}` does not apply to scope `{scope}`"));
        }
        if self.before.is_some() && !scope.is_bulk() {
            return Err(format!(
                "field `before` applies only to the bulk scopes subject, client and issuer, not `{scope}`"
            ));
        }
        let latest = cutoffs.latest_before();
        let before = match self.before {
            Some(b) if b > latest => {
                return Err(format!(
                    "`before` {b} is in the future (the latest accepted is {latest}: now plus the \
                     maximum clock offset); a cutoff in the future would revoke tokens not yet issued"
                ))
            }
            Some(b) => b,
            None => latest,
        };
        let iss = self.iss;
        let target = match scope {
            ScopeKind::Token => match (self.jti, self.token) {
                (Some(jti), None) => Target::Token { iss, jti },
                (None, Some(token)) => {
                    if iss.is_some() {
                        return Err(
                            "field `iss` does not apply to an opaque `token`: it is matched by its hash alone"
                                .into(),
                        );
                    }
                    if token.is_empty() {
                        return Err("field `token` must not be empty".into());
                    }
                    if token.len() > MAX_TOKEN_BYTES {
                        return Err(format!(
                            "field `token` is {} bytes; the limit is {MAX_TOKEN_BYTES}",
                            token.len()
                        ));
                    }
                    Target::opaque_token(&token)
                }
                (Some(_), Some(_)) => {
                    return Err("scope `token` takes either `jti` or `token`, not both".into())
                }
                (None, None) => {
                    return Err(
                        "scope `token` needs `jti` (with an optional `iss`) or `token`".into(),
                    )
                }
            },
            ScopeKind::Session => Target::Session {
                iss,
                sid: take(self.sid, "sid", scope)?,
            },
            ScopeKind::Subject => Target::Subject {
                iss,
                sub: take(self.sub, "sub", scope)?,
                before,
            },
            ScopeKind::Client => Target::Client {
                iss,
                client_id: take(self.client_id, "client_id", scope)?,
                before,
            },
            ScopeKind::Issuer => Target::Issuer {
                iss: take(iss, "iss", scope)?,
                before,
            },
            ScopeKind::Key => Target::Key {
                iss,
                kid: take(self.kid, "kid", scope)?,
            },
            ScopeKind::Peer => peer_target(self.name, self.cert_sha256.as_deref())?,
        };
        target.validate().map_err(|e| e.to_string())?;
        let expires_at = match self.expires_at {
            Some(t) if t < now => {
                return Err(format!(
                    "`expires_at` {t} is in the past (now is {now}); a record that has already expired revokes nothing"
                ))
            }
            Some(t) if t > cutoffs.latest_expiry() => {
                return Err(format!(
                    "`expires_at` {t} is more than {} days ahead (the latest accepted is {}); \
                     such a record would never be collected",
                    MAX_EXPIRY_HORIZON / 86_400,
                    cutoffs.latest_expiry()
                ))
            }
            Some(t) => t,
            // A certificate outlives any token: the refusal must too.
            None if scope == ScopeKind::Peer => cutoffs.latest_expiry(),
            None if scope.is_bulk() => before.saturating_add(max_lifetime).max(now),
            None => now.saturating_add(max_lifetime),
        };
        let reason = self.reason.unwrap_or_default();
        check_note("reason", &reason).map_err(|e| e.to_string())?;
        let actor = self.actor.unwrap_or_else(|| DEFAULT_ACTOR.to_owned());
        check_note("actor", &actor).map_err(|e| e.to_string())?;
        Ok(Revocation {
            target,
            expires_at,
            reason,
            actor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const DAY: u64 = 86_400;

    const CUTOFFS: Cutoffs = Cutoffs {
        now: NOW,
        max_lifetime: DAY,
        max_offset: 1,
    };

    fn req(json: &str) -> Result<Revocation, String> {
        serde_json::from_str::<RevokeRequest>(json)
            .map_err(|e| e.to_string())?
            .into_revocation(&CUTOFFS)
            .map_err(|e| e.0)
    }

    #[test]
    fn defaults_follow_the_scope() {
        let r = req(r#"{"scope":"token","iss":"i","jti":"j"}"#).unwrap();
        assert_eq!(r.expires_at, NOW + DAY);
        assert_eq!(r.actor, DEFAULT_ACTOR);
        assert_eq!(r.reason, "");

        let r = req(r#"{"scope":"subject","sub":"alice","before":1600000000}"#).unwrap();
        assert_eq!(r.target.before(), Some(1_600_000_000));
        // before + lifetime is long past: the record still lives until now.
        assert_eq!(r.expires_at, NOW);

        // The default cutoff covers every token issued by a clock up to the
        // maximum offset ahead, in the second of the revocation too.
        let r = req(r#"{"scope":"issuer","iss":"i"}"#).unwrap();
        assert_eq!(r.target.before(), Some(NOW + 2));
        assert_eq!(r.expires_at, NOW + 2 + DAY);

        let r = req(r#"{"scope":"token","token":"opaque"}"#).unwrap();
        assert_eq!(r.target, Target::opaque_token("opaque"));

        // A certificate's refusal lasts as long as anything may.
        let sha = "AB".repeat(32);
        let r = req(&format!(
            r#"{{"scope":"peer","name":"b","cert_sha256":"{sha}"}}"#
        ))
        .unwrap();
        assert_eq!(
            r.target,
            Target::Peer {
                name: Some("b".into()),
                cert_sha256: Some([0xab; 32]),
            }
        );
        assert_eq!(r.expires_at, CUTOFFS.latest_expiry());
        let r = req(r#"{"scope":"peer","name":"b","expires_at":1700000100}"#).unwrap();
        assert_eq!(r.expires_at, 1_700_000_100);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let e = req(r#"{"scope":"user","sub":"a"}"#).unwrap_err();
        assert!(e.contains(SCOPE_LIST), "{e}");
        let e = req(r#"{"scope":"session","jti":"a"}"#).unwrap_err();
        assert!(e.contains("`jti`"), "{e}");
        let e = req(r#"{"scope":"client"}"#).unwrap_err();
        assert!(e.contains("needs `client_id`"), "{e}");
        let e = req(r#"{"scope":"key","kid":"k","before":5}"#).unwrap_err();
        assert!(e.contains("`before`"), "{e}");
        let e = req(r#"{"scope":"token","jti":"j","expires_at":5}"#).unwrap_err();
        assert!(e.contains("in the past"), "{e}");
        let e = req(r#"{"scope":"token","token":"t","iss":"i"}"#).unwrap_err();
        assert!(e.contains("`iss`"), "{e}");
        let e = req(r#"{"scope":"token","jti":"j","token":"t"}"#).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = req(r#"{"scope":"token","jti":""}"#).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = req(r#"{"scope":"subject","sub":"a","before":1700000003}"#).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
        assert!(req(r#"{"scope":"subject","sub":"a","before":1700000002}"#).is_ok());
        let e = req(r#"{"scope":"subject","sub":"a","before":18446744073709551615}"#).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
        let e =
            req(r#"{"scope":"token","jti":"j","expires_at":18446744073709551615}"#).unwrap_err();
        assert!(e.contains("never be collected"), "{e}");
        let far = NOW + MAX_EXPIRY_HORIZON;
        assert!(req(&format!(
            r#"{{"scope":"token","jti":"j","expires_at":{far}}}"#
        ))
        .is_ok());
        let e = req(r#"{"scope":"subject","sub":"a","before":"yesterday"}"#).unwrap_err();
        assert!(e.contains("`before` must be Unix seconds"), "{e}");
        let e = req(r#"{"scope":"peer"}"#).unwrap_err();
        assert!(e.contains("`name`") && e.contains("`cert_sha256`"), "{e}");
        let e = req(r#"{"scope":"peer","cert_sha256":"abcd"}"#).unwrap_err();
        assert!(e.contains("exactly 64 hex digits"), "{e}");
        let e = req(&format!(
            r#"{{"scope":"peer","cert_sha256":"{}"}}"#,
            "g".repeat(64)
        ))
        .unwrap_err();
        assert!(e.contains("exactly 64 hex digits"), "{e}");
        let e = req(&format!(
            r#"{{"scope":"peer","name":"{}"}}"#,
            "n".repeat(256)
        ))
        .unwrap_err();
        assert!(e.contains("`name` is 256 bytes; the limit is 255"), "{e}");
        let e = req(r#"{"scope":"peer","name":""}"#).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = req(r#"{"scope":"peer","name":"b","iss":"i"}"#).unwrap_err();
        assert!(e.contains("`iss` does not apply"), "{e}");
        let e = req(r#"{"scope":"token","jti":"j","name":"b"}"#).unwrap_err();
        assert!(e.contains("`name` does not apply"), "{e}");
        let long = "r".repeat(513);
        let e = req(&format!(r#"{{"scope":"key","kid":"k","reason":"{long}"}}"#)).unwrap_err();
        assert!(e.contains("reason"), "{e}");
    }
}
