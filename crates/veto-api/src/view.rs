//! The record lists the revoke and audit endpoints answer. A record's JSON
//! form is veto-core's [`RecordView`], the one the client reads back.

use serde::Serialize;
pub(crate) use veto_core::view::RecordView;
use veto_core::Record;

/// `{"records": [...]}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecordList {
    records: Vec<RecordView>,
}

impl RecordList {
    pub(crate) fn new(records: &[Record]) -> RecordList {
        RecordList {
            records: records.iter().map(RecordView::from).collect(),
        }
    }
}

/// A record as a `read` token sees it on `/v1/watch` and `/v1/snapshot`:
/// what enforcement needs (keys, cutoff, expiry, identity) and never the
/// audit fields `reason`, `actor` and `on_behalf_of`, which say who is
/// investigated and why. The client reads it back as a record with those
/// left empty.
#[derive(Serialize)]
pub(crate) struct EnforcementView {
    id: String,
    scope: veto_core::ScopeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<u64>,
    expires_at: u64,
    origin: String,
    seq: u64,
    hlc: String,
    revoked_at: u64,
}

impl From<RecordView> for EnforcementView {
    fn from(v: RecordView) -> EnforcementView {
        EnforcementView {
            id: v.id,
            scope: v.scope,
            iss: v.iss,
            jti: v.jti,
            token_sha256: v.token_sha256,
            sid: v.sid,
            sub: v.sub,
            client_id: v.client_id,
            kid: v.kid,
            name: v.name,
            cert_sha256: v.cert_sha256,
            before: v.before,
            expires_at: v.expires_at,
            origin: v.origin,
            seq: v.seq,
            hlc: v.hlc,
            revoked_at: v.revoked_at,
        }
    }
}

/// Which form of a record a caller may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Every field ([`RecordView`]): the `audit` role.
    Full,
    /// [`EnforcementView`]: the `read` role.
    Enforcement,
}

impl Detail {
    /// A record's JSON in this form.
    pub(crate) fn json(self, r: &Record) -> serde_json::Result<String> {
        let view = RecordView::from(r);
        match self {
            Detail::Full => serde_json::to_string(&view),
            Detail::Enforcement => serde_json::to_string(&EnforcementView::from(view)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veto_core::{Hlc, NodeId, RecordId, Target};

    #[test]
    fn the_enforcement_form_reads_back_with_the_same_target_and_no_audit_fields() {
        let targets = [
            Target::Token {
                iss: Some("https://idp".into()),
                jti: "j".into(),
            },
            Target::TokenHash { sha256: [7; 32] },
            Target::Session {
                iss: None,
                sid: "s".into(),
            },
            Target::Subject {
                iss: None,
                sub: "bob".into(),
                before: 9,
            },
            Target::Client {
                iss: None,
                client_id: "c".into(),
                before: 9,
            },
            Target::Issuer {
                iss: "i".into(),
                before: 9,
            },
            Target::Key {
                iss: None,
                kid: "k".into(),
            },
            Target::Peer {
                name: Some("eu-west".into()),
                cert_sha256: Some([3; 32]),
            },
        ];
        for (i, target) in targets.into_iter().enumerate() {
            let record = Record {
                id: RecordId {
                    origin: NodeId::new(0xab),
                    seq: i as u64 + 1,
                },
                hlc: Hlc(1 << 40),
                target,
                expires_at: 99,
                reason: "case 12".into(),
                actor: veto_core::actor::compose("soc-bot", Some("alice")),
            };
            let json = Detail::Enforcement.json(&record).unwrap();
            for word in [
                "reason",
                "actor",
                "on_behalf_of",
                "case 12",
                "soc-bot",
                "alice",
            ] {
                assert!(!json.contains(word), "{word} in {json}");
            }
            let view: RecordView = serde_json::from_str(&json).unwrap();
            let back = Record::try_from(view).unwrap();
            assert_eq!(back.target, record.target, "{json}");
            assert_eq!(
                (back.id, back.hlc, back.expires_at),
                (record.id, record.hlc, 99)
            );
        }
    }
}
