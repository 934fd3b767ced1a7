//! A lookup: what a gateway knows about one token, and the semantics of a match.

use std::borrow::Cow;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::record::{Record, ScopeKind, Target};

/// What a gateway knows of one token: the claims of a decoded JWT that matter
/// to revocation, or what a gateway fills in itself. It comes in two forms
/// that differ only in how they hold strings: [`Claims`] owns them, and
/// [`ClaimsRef`] borrows them from a JWT decoded by
/// [`crate::jwt::decode_in`] (a string with JSON escapes is the one thing
/// copied). [`ClaimSet::as_check`] borrows either as the [`Check`] a lookup
/// takes. As JSON (an item of `POST /v1/check`, or the keys of a record) it
/// carries the lookup keys and `iat`, and leaves out what is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSet<S> {
    /// `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<S>,
    /// `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<S>,
    /// `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<S>,
    /// `sid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<S>,
    /// `client_id`, or `azp` when there is no `client_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<S>,
    /// `kid` from the JWT header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<S>,
    /// `iat`, whole seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// `exp`, whole seconds. Not a lookup key: never sent.
    #[serde(skip)]
    pub exp: Option<u64>,
    /// SHA-256 of an opaque token, for a lookup of one (a JWT has none). Sent
    /// as the token itself, never as its hash (see `POST /v1/check`).
    #[serde(skip)]
    pub token_sha256: Option<[u8; 32]>,
}

/// Owned claims ([`crate::jwt::decode`]), or what a gateway fills in itself.
pub type Claims = ClaimSet<String>;

/// Claims borrowed from a decoded JWT ([`crate::jwt::decode_in`]).
pub type ClaimsRef<'a> = ClaimSet<Cow<'a, str>>;

impl<S: Deref<Target = str>> ClaimSet<S> {
    /// The claims as a lookup.
    pub fn as_check(&self) -> Check<'_> {
        Check {
            iss: self.iss.as_deref(),
            sub: self.sub.as_deref(),
            jti: self.jti.as_deref(),
            sid: self.sid.as_deref(),
            client_id: self.client_id.as_deref(),
            kid: self.kid.as_deref(),
            iat: self.iat,
            token_sha256: self.token_sha256,
        }
    }
}

impl ClaimsRef<'_> {
    /// The claims, owned.
    pub fn into_owned(self) -> Claims {
        let own = |s: Option<Cow<'_, str>>| s.map(Cow::into_owned);
        Claims {
            iss: own(self.iss),
            sub: own(self.sub),
            jti: own(self.jti),
            sid: own(self.sid),
            client_id: own(self.client_id),
            kid: own(self.kid),
            iat: self.iat,
            exp: self.exp,
            token_sha256: self.token_sha256,
        }
    }
}

/// What a gateway has of one token. Every field is optional; a record matches only
/// on the fields it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Check<'a> {
    /// `iss` claim. A check without it is matched by records of any issuer
    /// (fail closed: the gateway could not rule the issuer out).
    pub iss: Option<&'a str>,
    /// `sub` claim.
    pub sub: Option<&'a str>,
    /// `jti` claim.
    pub jti: Option<&'a str>,
    /// `sid` claim.
    pub sid: Option<&'a str>,
    /// `client_id` claim (or `azp`).
    pub client_id: Option<&'a str>,
    /// `kid` from the JWT header.
    pub kid: Option<&'a str>,
    /// `iat` claim, Unix seconds. Without it, any applicable bulk cutoff revokes
    /// the token (fail closed).
    pub iat: Option<u64>,
    /// SHA-256 of the raw token string, for opaque tokens.
    pub token_sha256: Option<[u8; 32]>,
}

fn iss_matches(record_iss: Option<&str>, check_iss: Option<&str>) -> bool {
    match (record_iss, check_iss) {
        (None, _) | (_, None) => true,
        (Some(r), Some(c)) => r == c,
    }
}

fn issued_before(iat: Option<u64>, before: u64) -> bool {
    iat.is_none_or(|iat| iat < before)
}

impl Check<'_> {
    /// Whether `target` revokes this token. This is the specification that the
    /// [`crate::index::LookupIndex`] implements with hash lookups, and that tests
    /// compare it against.
    pub fn matched_by(&self, target: &Target) -> bool {
        let iss_ok = iss_matches(target.iss(), self.iss);
        match target {
            Target::Token { jti, .. } => iss_ok && self.jti == Some(jti),
            Target::TokenHash { sha256 } => self.token_sha256.as_ref() == Some(sha256),
            Target::Session { sid, .. } => iss_ok && self.sid == Some(sid),
            Target::Subject { sub, before, .. } => {
                iss_ok && self.sub == Some(sub) && issued_before(self.iat, *before)
            }
            Target::Client {
                client_id, before, ..
            } => iss_ok && self.client_id == Some(client_id) && issued_before(self.iat, *before),
            Target::Issuer { iss, before } => {
                self.iss == Some(iss.as_str()) && issued_before(self.iat, *before)
            }
            Target::Key { kid, .. } => iss_ok && self.kid == Some(kid),
            // A node's certificate is not a token scope.
            Target::Peer { .. } => false,
        }
    }
}

/// The answer to one lookup as JSON (`GET /v1/check`, an item of
/// `POST /v1/check`): `{"revoked": false}`, or `{"revoked": true, "scope",
/// "id", "reason", "revoked_at"}`. The node writes it and the client reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CheckAnswer))]
pub struct CheckAnswer<'a> {
    /// Whether the token is revoked.
    pub revoked: bool,
    /// The scope of the matching record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub scope: Option<ScopeKind>,
    /// The matching record's id, as `origin-seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    /// The reason given when it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
    /// Unix seconds at which it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl<'a> CheckAnswer<'a> {
    /// A revoked answer.
    pub fn revoked(
        scope: ScopeKind,
        id: impl Into<Cow<'a, str>>,
        reason: impl Into<Cow<'a, str>>,
        revoked_at: u64,
    ) -> CheckAnswer<'a> {
        CheckAnswer {
            revoked: true,
            scope: Some(scope),
            id: Some(id.into()),
            reason: Some(reason.into()),
            revoked_at: Some(revoked_at),
        }
    }
}

/// The answer to `POST /v1/check`: `{"results": [...]}`, in request order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CheckResults))]
pub struct CheckResults<'a> {
    /// One answer per lookup.
    pub results: Vec<CheckAnswer<'a>>,
}

/// Why a check came out revoked: the scope and the record that matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The scope of the matching record.
    pub scope: ScopeKind,
    /// The matching record.
    pub record: crate::id::RecordId,
}

/// A naive scan: the first record, in the given order, that matches. Used as the
/// model the index is tested against, and by small in-memory replicas.
pub fn scan<'r>(
    records: impl IntoIterator<Item = &'r Record>,
    check: &Check<'_>,
) -> Option<&'r Record> {
    records.into_iter().find(|r| check.matched_by(&r.target))
}
