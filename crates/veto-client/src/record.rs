//! Reading the node's record JSON (revoke answers, the audit trail, snapshot
//! lines and watch events) back into a [`veto_core::Record`].

pub use veto_core::view::RecordView;
use veto_core::Record;

use crate::error::ClientError;

fn into_record(view: RecordView) -> Result<Record, ClientError> {
    Record::try_from(view).map_err(|e| ClientError::protocol(e.0))
}

/// Parses one record from its JSON text.
pub(crate) fn parse_record(json: &str) -> Result<Record, ClientError> {
    serde_json::from_str::<RecordView>(json)
        .map_err(|e| ClientError::protocol(format!("record JSON: {e}")))
        .and_then(into_record)
}

/// Parses one record from a JSON value.
pub(crate) fn record_from_value(value: serde_json::Value) -> Result<Record, ClientError> {
    serde_json::from_value::<RecordView>(value)
        .map_err(|e| ClientError::protocol(format!("record JSON: {e}")))
        .and_then(into_record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use veto_core::{Hlc, Target};

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
}
