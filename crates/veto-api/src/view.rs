//! The JSON form of a stored record, as answered by the revoke and audit
//! endpoints.
//!
//! ```json
//! {"id": "00000000000000ab-7", "scope": "subject", "iss": "https://idp",
//!  "sub": "alice", "before": 1700000000, "expires_at": 1700086400,
//!  "reason": "laptop stolen", "actor": "admin", "origin": "00000000000000ab",
//!  "seq": 7, "hlc": "7302459174400393216", "revoked_at": 1700000000}
//! ```
//!
//! Only the keys of the record's scope appear; an absent `iss` means the record
//! matches tokens of any issuer. An opaque token appears as `token_sha256` (hex),
//! never as the token. `hlc` is the raw 64-bit stamp as a decimal string, because
//! JSON numbers above 2^53 lose precision in many clients.

use serde::Serialize;
use veto_core::{Record, Target};

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Record)]
pub(crate) struct RecordView<'a> {
    id: String,
    scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
    expires_at: u64,
    reason: &'a str,
    actor: &'a str,
    origin: String,
    seq: u64,
    hlc: String,
    revoked_at: u64,
}

impl<'a> RecordView<'a> {
    pub(crate) fn new(r: &'a Record) -> RecordView<'a> {
        let mut v = RecordView {
            id: r.id.to_string(),
            scope: r.target.kind().as_str(),
            iss: r.target.iss(),
            jti: None,
            token_sha256: None,
            sid: None,
            sub: None,
            client_id: None,
            kid: None,
            before: r.target.before(),
            expires_at: r.expires_at,
            reason: &r.reason,
            actor: &r.actor,
            origin: r.origin().to_string(),
            seq: r.id.seq,
            hlc: r.hlc.0.to_string(),
            revoked_at: r.revoked_at(),
        };
        match &r.target {
            Target::Token { jti, .. } => v.jti = Some(jti),
            Target::TokenHash { sha256 } => v.token_sha256 = Some(hex::encode(sha256)),
            Target::Session { sid, .. } => v.sid = Some(sid),
            Target::Subject { sub, .. } => v.sub = Some(sub),
            Target::Client { client_id, .. } => v.client_id = Some(client_id),
            Target::Issuer { .. } => {}
            Target::Key { kid, .. } => v.kid = Some(kid),
        }
        v
    }
}

/// `{"records": [...]}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecordList<'a> {
    records: Vec<RecordView<'a>>,
}

impl<'a> RecordList<'a> {
    pub(crate) fn new(records: &'a [Record]) -> RecordList<'a> {
        RecordList {
            records: records.iter().map(RecordView::new).collect(),
        }
    }
}
