//! Reading the node's record JSON (revoke answers, the audit trail, snapshot
//! lines and watch events) back into a [`veto_core::Record`].

use serde::Deserialize;
use veto_core::{Hlc, Record, RecordId, ScopeKind, Target};

use crate::error::ClientError;

/// A record as the node writes it.
#[derive(Deserialize)]
struct RecordJson {
    id: String,
    scope: ScopeKind,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    token_sha256: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    before: Option<u64>,
    expires_at: u64,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    actor: String,
    hlc: String,
}

fn need<T>(value: Option<T>, field: &str, scope: ScopeKind) -> Result<T, ClientError> {
    value.ok_or_else(|| ClientError::protocol(format!("a {scope} record without `{field}`")))
}

impl RecordJson {
    fn into_record(self) -> Result<Record, ClientError> {
        let id: RecordId = self
            .id
            .parse()
            .map_err(|e| ClientError::protocol(format!("record id: {e}")))?;
        let hlc = self
            .hlc
            .parse::<u64>()
            .map_err(|_| ClientError::protocol(format!("record {id}: hlc {:?}", self.hlc)))?;
        let scope = self.scope;
        let iss = self.iss;
        let target = match scope {
            ScopeKind::Token => match (self.jti, self.token_sha256) {
                (Some(jti), _) => Target::Token { iss, jti },
                (None, Some(hex)) => {
                    let mut sha256 = [0u8; 32];
                    hex::decode_to_slice(&hex, &mut sha256).map_err(|_| {
                        ClientError::protocol(format!("record {id}: token_sha256 {hex:?}"))
                    })?;
                    Target::TokenHash { sha256 }
                }
                (None, None) => {
                    return Err(ClientError::protocol(format!(
                        "token record {id} without `jti` or `token_sha256`"
                    )))
                }
            },
            ScopeKind::Session => Target::Session {
                iss,
                sid: need(self.sid, "sid", scope)?,
            },
            ScopeKind::Subject => Target::Subject {
                iss,
                sub: need(self.sub, "sub", scope)?,
                before: need(self.before, "before", scope)?,
            },
            ScopeKind::Client => Target::Client {
                iss,
                client_id: need(self.client_id, "client_id", scope)?,
                before: need(self.before, "before", scope)?,
            },
            ScopeKind::Issuer => Target::Issuer {
                iss: need(iss, "iss", scope)?,
                before: need(self.before, "before", scope)?,
            },
            ScopeKind::Key => Target::Key {
                iss,
                kid: need(self.kid, "kid", scope)?,
            },
        };
        Ok(Record {
            id,
            hlc: Hlc(hlc),
            target,
            expires_at: self.expires_at,
            reason: self.reason,
            actor: self.actor,
        })
    }
}

/// Parses one record from its JSON text.
pub(crate) fn parse_record(json: &str) -> Result<Record, ClientError> {
    serde_json::from_str::<RecordJson>(json)
        .map_err(|e| ClientError::protocol(format!("record JSON: {e}")))?
        .into_record()
}

/// Parses one record from a JSON value.
pub(crate) fn record_from_value(value: serde_json::Value) -> Result<Record, ClientError> {
    serde_json::from_value::<RecordJson>(value)
        .map_err(|e| ClientError::protocol(format!("record JSON: {e}")))?
        .into_record()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_reads_back() {
        let cases = [
            (
                r#"{"id":"00000000000000ab-7","scope":"subject","iss":"https://idp","sub":"alice","before":1700000000,"expires_at":1700086400,"reason":"laptop stolen","actor":"admin","origin":"00000000000000ab","seq":7,"hlc":"7302459174400393216","revoked_at":1700000000}"#,
                Target::Subject {
                    iss: Some("https://idp".into()),
                    sub: "alice".into(),
                    before: 1_700_000_000,
                },
            ),
            (
                r#"{"id":"00000000000000ab-8","scope":"token","token_sha256":"0101010101010101010101010101010101010101010101010101010101010101","expires_at":5,"reason":"","actor":"a","hlc":"1"}"#,
                Target::TokenHash { sha256: [1; 32] },
            ),
            (
                r#"{"id":"00000000000000ab-9","scope":"issuer","iss":"i","before":3,"expires_at":5,"reason":"","actor":"a","hlc":"1"}"#,
                Target::Issuer {
                    iss: "i".into(),
                    before: 3,
                },
            ),
            (
                r#"{"id":"00000000000000ab-10","scope":"key","kid":"k1","expires_at":5,"reason":"","actor":"a","hlc":"1"}"#,
                Target::Key {
                    iss: None,
                    kid: "k1".into(),
                },
            ),
        ];
        for (json, target) in &cases {
            assert_eq!(&parse_record(json).unwrap().target, target, "{json}");
        }
        let r = parse_record(cases[0].0).unwrap();
        assert_eq!(r.id.to_string(), "00000000000000ab-7");
        assert_eq!(r.hlc, Hlc(7_302_459_174_400_393_216));
        assert_eq!(r.reason, "laptop stolen");
        assert_eq!(r.expires_at, 1_700_086_400);
    }

    #[test]
    fn records_missing_their_keys_are_refused() {
        for json in [
            r#"{"id":"00000000000000ab-1","scope":"session","expires_at":5,"hlc":"1"}"#,
            r#"{"id":"00000000000000ab-1","scope":"subject","sub":"a","expires_at":5,"hlc":"1"}"#,
            r#"{"id":"00000000000000ab-1","scope":"token","expires_at":5,"hlc":"1"}"#,
            r#"{"id":"00000000000000ab-1","scope":"token","token_sha256":"zz","expires_at":5,"hlc":"1"}"#,
            r#"{"id":"nope","scope":"key","kid":"k","expires_at":5,"hlc":"1"}"#,
            r#"{"id":"00000000000000ab-1","scope":"key","kid":"k","expires_at":5,"hlc":"x"}"#,
        ] {
            assert!(parse_record(json).is_err(), "{json}");
        }
    }
}
