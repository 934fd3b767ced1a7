//! Reading the node's record JSON (revoke answers, the audit trail, snapshot
//! lines and watch events) back into a [`veto_core::Record`].

use serde::{Deserialize, Serialize};
use veto_core::{Claims, Hlc, Record, RecordId, ScopeKind, Target};

use crate::error::ClientError;

/// A record in the JSON form the node answers and streams (revoke answers,
/// the audit trail, snapshot lines and watch events):
/// `{"id", "scope", <the scope's keys>, "before"?, "expires_at", "reason",
/// "actor", "origin", "seq", "hlc", "revoked_at"}`. An opaque token appears
/// as `token_sha256` (hex); `hlc` is the 64-bit stamp as a decimal string.
/// [`Record::try_from`] turns it into the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    /// `origin-seq`.
    pub id: String,
    /// The scope.
    pub scope: ScopeKind,
    /// The keys of its scope: `iss` (absent for a record of any issuer),
    /// then a token's `jti`, a session's `sid`, a subject's `sub`, a client's
    /// `client_id` or a key's `kid`.
    #[serde(flatten)]
    pub keys: Claims,
    /// An opaque token's SHA-256, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// A bulk scope's cutoff, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// When the record can no longer match a live token, Unix seconds.
    pub expires_at: u64,
    /// Why it was revoked.
    pub reason: String,
    /// Who revoked it.
    pub actor: String,
    /// The node that made it, 16 hex digits.
    pub origin: String,
    /// Its sequence number at that node.
    pub seq: u64,
    /// The hybrid logical clock stamp, as a decimal string.
    pub hlc: String,
    /// Unix seconds at which it was revoked.
    pub revoked_at: u64,
}

fn need<T>(value: Option<T>, field: &str, scope: ScopeKind) -> Result<T, ClientError> {
    value.ok_or_else(|| ClientError::protocol(format!("a {scope} record without `{field}`")))
}

impl TryFrom<RecordView> for Record {
    type Error = ClientError;

    fn try_from(view: RecordView) -> Result<Record, ClientError> {
        view.into_record()
    }
}

impl RecordView {
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
        let iss = self.keys.iss;
        let target = match scope {
            ScopeKind::Token => match (self.keys.jti, self.token_sha256) {
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
                sid: need(self.keys.sid, "sid", scope)?,
            },
            ScopeKind::Subject => Target::Subject {
                iss,
                sub: need(self.keys.sub, "sub", scope)?,
                before: need(self.before, "before", scope)?,
            },
            ScopeKind::Client => Target::Client {
                iss,
                client_id: need(self.keys.client_id, "client_id", scope)?,
                before: need(self.before, "before", scope)?,
            },
            ScopeKind::Issuer => Target::Issuer {
                iss: need(iss, "iss", scope)?,
                before: need(self.before, "before", scope)?,
            },
            ScopeKind::Key => Target::Key {
                iss,
                kid: need(self.keys.kid, "kid", scope)?,
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
    serde_json::from_str::<RecordView>(json)
        .map_err(|e| ClientError::protocol(format!("record JSON: {e}")))?
        .into_record()
}

/// Parses one record from a JSON value.
pub(crate) fn record_from_value(value: serde_json::Value) -> Result<Record, ClientError> {
    serde_json::from_value::<RecordView>(value)
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
                r#"{"id":"00000000000000ab-8","scope":"token","token_sha256":"0101010101010101010101010101010101010101010101010101010101010101","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
                Target::TokenHash { sha256: [1; 32] },
            ),
            (
                r#"{"id":"00000000000000ab-9","scope":"issuer","iss":"i","before":3,"expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
                Target::Issuer {
                    iss: "i".into(),
                    before: 3,
                },
            ),
            (
                r#"{"id":"00000000000000ab-10","scope":"key","kid":"k1","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
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
    fn the_view_writes_back_what_it_read() {
        let json = r#"{"id":"00000000000000ab-7","scope":"subject","iss":"https://idp","sub":"alice","before":1700000000,"expires_at":1700086400,"reason":"laptop stolen","actor":"admin","origin":"00000000000000ab","seq":7,"hlc":"7302459174400393216","revoked_at":1700000000}"#;
        let view: RecordView = serde_json::from_str(json).unwrap();
        assert_eq!(view.keys.sub.as_deref(), Some("alice"));
        let back = serde_json::to_value(&view).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }

    #[test]
    fn records_missing_their_keys_are_refused() {
        for json in [
            r#"{"id":"00000000000000ab-1","scope":"session","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
            r#"{"id":"00000000000000ab-1","scope":"subject","sub":"a","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
            r#"{"id":"00000000000000ab-1","scope":"token","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
            r#"{"id":"00000000000000ab-1","scope":"token","token_sha256":"zz","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
            r#"{"id":"nope","scope":"key","kid":"k","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
            r#"{"id":"00000000000000ab-1","scope":"key","kid":"k","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"x","revoked_at":0}"#,
        ] {
            assert!(parse_record(json).is_err(), "{json}");
        }
    }
}
