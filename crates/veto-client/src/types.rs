//! What the client sends and what the node answers, as Rust types.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use veto_core::{Check, NodeId, RecordId, ScopeKind};

use crate::error::ClientError;

/// What a gateway knows of one token, owned. [`Claims::as_check`] borrows it
/// as the [`Check`] that [`crate::LocalCache::check`] takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `sid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `client_id` (or `azp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `kid` from the JWT header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `iat`, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

impl Claims {
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
            token_sha256: None,
        }
    }

    /// The query pairs of `GET /v1/check`.
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let text = [
            ("iss", &self.iss),
            ("sub", &self.sub),
            ("jti", &self.jti),
            ("sid", &self.sid),
            ("client_id", &self.client_id),
            ("kid", &self.kid),
        ];
        for (name, value) in text {
            if let Some(v) = value {
                q.push((name, v.clone()));
            }
        }
        if let Some(iat) = self.iat {
            q.push(("iat", iat.to_string()));
        }
        q
    }
}

/// One item of a batch lookup (`POST /v1/check`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CheckItem {
    /// Claims the gateway has already decoded.
    Claims(Claims),
    /// A raw token: a JWT (decoded by the node) or an opaque token.
    Token {
        /// The token string.
        token: String,
    },
}

/// Why a token is revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The scope of the matching record.
    pub scope: ScopeKind,
    /// The matching record.
    pub id: RecordId,
    /// The reason given when it was revoked.
    pub reason: Arc<str>,
    /// Unix seconds at which it was revoked.
    pub revoked_at: u64,
}

/// A lookup answer as JSON.
#[derive(Deserialize)]
pub(crate) struct CheckAnswer {
    revoked: bool,
    #[serde(default)]
    scope: Option<ScopeKind>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    revoked_at: Option<u64>,
}

impl CheckAnswer {
    pub(crate) fn into_revoked(self) -> Result<Option<Revoked>, ClientError> {
        if !self.revoked {
            return Ok(None);
        }
        let (Some(scope), Some(id)) = (self.scope, self.id) else {
            return Err(ClientError::protocol(
                "a revoked answer without its scope or id",
            ));
        };
        let id = id
            .parse()
            .map_err(|e| ClientError::protocol(format!("record id: {e}")))?;
        Ok(Some(Revoked {
            scope,
            id,
            reason: self.reason.unwrap_or_default().into(),
            revoked_at: self.revoked_at.unwrap_or_default(),
        }))
    }
}

/// Filters of the audit trail (`GET /v1/revocations`); all optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this scope.
    pub scope: Option<ScopeKind>,
    /// Only records with this key (any key field, or an opaque token's hex
    /// SHA-256).
    pub key: Option<String>,
    /// Only records made at this node.
    pub origin: Option<NodeId>,
    /// Revoked at or after, Unix seconds.
    pub since: Option<u64>,
    /// Revoked before, Unix seconds.
    pub until: Option<u64>,
    /// At most this many (the node's default is 100, its limit 1,000).
    pub limit: Option<usize>,
}

impl AuditFilter {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(s) = self.scope {
            q.push(("scope", s.as_str().to_owned()));
        }
        if let Some(k) = &self.key {
            q.push(("key", k.clone()));
        }
        if let Some(o) = self.origin {
            q.push(("origin", o.to_string()));
        }
        if let Some(s) = self.since {
            q.push(("since", s.to_string()));
        }
        if let Some(u) = self.until {
            q.push(("until", u.to_string()));
        }
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        q
    }
}
