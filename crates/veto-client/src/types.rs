//! What the client sends and what the node answers, as Rust types.

use std::sync::Arc;

use serde::Serialize;
pub use veto_core::check::CheckAnswer;
pub use veto_core::Claims;
use veto_core::{RecordId, ScopeKind};

use crate::error::ClientError;

/// The query pairs of `GET /v1/check` for these claims.
pub(crate) fn check_query(claims: &Claims) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    let text = [
        ("iss", &claims.iss),
        ("sub", &claims.sub),
        ("jti", &claims.jti),
        ("sid", &claims.sid),
        ("client_id", &claims.client_id),
        ("kid", &claims.kid),
    ];
    for (name, value) in text {
        if let Some(v) = value {
            q.push((name, v.clone()));
        }
    }
    if let Some(iat) = claims.iat {
        q.push(("iat", iat.to_string()));
    }
    q
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

impl Revoked {
    /// The answer as the node writes it (`{"revoked": true, ...}`).
    pub fn answer(&self) -> CheckAnswer<'_> {
        CheckAnswer::revoked(
            self.scope,
            self.id.to_string(),
            &*self.reason,
            self.revoked_at,
        )
    }
}

/// The [`Revoked`] of a lookup answer: `None` when not revoked.
pub(crate) fn revoked_of(answer: CheckAnswer<'_>) -> Result<Option<Revoked>, ClientError> {
    if !answer.revoked {
        return Ok(None);
    }
    let (Some(scope), Some(id)) = (answer.scope, answer.id) else {
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
        reason: answer.reason.unwrap_or_default().into(),
        revoked_at: answer.revoked_at.unwrap_or_default(),
    }))
}
