//! The JSON form of a stored record: what the revoke and audit endpoints
//! answer, snapshot lines and watch events carry, and the client reads back.
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
//! never as the token. A `peer` record carries `name` and/or `cert_sha256`
//! (hex). `hlc` is the raw 64-bit stamp as a decimal string, because
//! JSON numbers above 2^53 lose precision in many clients.

use serde::{Deserialize, Serialize};

use crate::{Hlc, Record, RecordId, ScopeKind, Target};

/// A record in its JSON form. [`RecordView::from`] writes it from a record;
/// [`Record::try_from`] reads it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Record))]
pub struct RecordView {
    /// `origin-seq`.
    pub id: String,
    /// The scope.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub scope: ScopeKind,
    /// The issuer; absent for a record of tokens of any issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A token's `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// An opaque token's SHA-256, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// A session's `sid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// A subject's `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// A client's `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A signing key's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// A `peer` record's node name (its certificate's common name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A `peer` record's certificate SHA-256 (of its DER encoding), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// A bulk scope's cutoff, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// When the record can no longer match a live token, Unix seconds.
    pub expires_at: u64,
    /// Why it was revoked (absent from the enforcement-only form, read as "").
    #[serde(default)]
    pub reason: String,
    /// The name of the credential that revoked it (absent from the
    /// enforcement-only form, read as "").
    #[serde(default)]
    pub actor: String,
    /// Whom the client said it acted for, when it named someone other than
    /// `actor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// The node that made it, 16 hex digits.
    pub origin: String,
    /// Its sequence number at that node.
    pub seq: u64,
    /// The hybrid logical clock stamp, as a decimal string.
    pub hlc: String,
    /// Unix seconds at which it was revoked.
    pub revoked_at: u64,
}

impl From<&Record> for RecordView {
    fn from(r: &Record) -> RecordView {
        let (actor_name, on_behalf_of) = crate::actor::split(&r.actor);
        let mut v = RecordView {
            id: r.id.to_string(),
            scope: r.target.kind(),
            iss: r.target.iss().map(str::to_owned),
            jti: None,
            token_sha256: None,
            sid: None,
            sub: None,
            client_id: None,
            kid: None,
            name: None,
            cert_sha256: None,
            before: r.target.before(),
            expires_at: r.expires_at,
            reason: r.reason.clone(),
            actor: actor_name.to_owned(),
            on_behalf_of: on_behalf_of.map(str::to_owned),
            origin: r.origin().to_string(),
            seq: r.id.seq,
            hlc: r.hlc.0.to_string(),
            revoked_at: r.revoked_at(),
        };
        match &r.target {
            Target::Token { jti, .. } => v.jti = Some(jti.clone()),
            Target::TokenHash { sha256 } => v.token_sha256 = Some(hex::encode(sha256)),
            Target::Session { sid, .. } => v.sid = Some(sid.clone()),
            Target::Subject { sub, .. } => v.sub = Some(sub.clone()),
            Target::Client { client_id, .. } => v.client_id = Some(client_id.clone()),
            Target::Issuer { .. } => {}
            Target::Key { kid, .. } => v.kid = Some(kid.clone()),
            Target::Peer { name, cert_sha256 } => {
                v.name = name.clone();
                v.cert_sha256 = cert_sha256.map(hex::encode);
            }
        }
        v
    }
}

/// Record JSON that does not describe a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record JSON: {0}")]
pub struct BadRecordJson(pub String);

fn need<T>(value: Option<T>, field: &str, scope: ScopeKind) -> Result<T, BadRecordJson> {
    value.ok_or_else(|| BadRecordJson(format!("a {} record without `{field}`", scope.as_str())))
}

impl TryFrom<RecordView> for Record {
    type Error = BadRecordJson;

    fn try_from(view: RecordView) -> Result<Record, BadRecordJson> {
        let id: RecordId = view
            .id
            .parse()
            .map_err(|e| BadRecordJson(format!("record id: {e}")))?;
        let hlc = view
            .hlc
            .parse::<u64>()
            .map_err(|_| BadRecordJson(format!("record {id}: hlc {:?}", view.hlc)))?;
        let scope = view.scope;
        let iss = view.iss;
        let target = match scope {
            ScopeKind::Token => match (view.jti, view.token_sha256) {
                (Some(jti), _) => Target::Token { iss, jti },
                (None, Some(hex)) => {
                    let mut sha256 = [0u8; 32];
                    hex::decode_to_slice(&hex, &mut sha256)
                        .map_err(|_| BadRecordJson(format!("record {id}: token_sha256 {hex:?}")))?;
                    Target::TokenHash { sha256 }
                }
                (None, None) => {
                    return Err(BadRecordJson(format!(
                        "token record {id} without `jti` or `token_sha256`"
                    )))
                }
            },
            ScopeKind::Session => Target::Session {
                iss,
                sid: need(view.sid, "sid", scope)?,
            },
            ScopeKind::Subject => Target::Subject {
                iss,
                sub: need(view.sub, "sub", scope)?,
                before: need(view.before, "before", scope)?,
            },
            ScopeKind::Client => Target::Client {
                iss,
                client_id: need(view.client_id, "client_id", scope)?,
                before: need(view.before, "before", scope)?,
            },
            ScopeKind::Issuer => Target::Issuer {
                iss: need(iss, "iss", scope)?,
                before: need(view.before, "before", scope)?,
            },
            ScopeKind::Key => Target::Key {
                iss,
                kid: need(view.kid, "kid", scope)?,
            },
            ScopeKind::Peer => {
                let cert_sha256 = match view.cert_sha256 {
                    None => None,
                    Some(hex) => {
                        let mut sha256 = [0u8; 32];
                        hex::decode_to_slice(&hex, &mut sha256).map_err(|_| {
                            BadRecordJson(format!("record {id}: cert_sha256 {hex:?}"))
                        })?;
                        Some(sha256)
                    }
                };
                if view.name.is_none() && cert_sha256.is_none() {
                    return Err(BadRecordJson(format!(
                        "peer record {id} without `name` or `cert_sha256`"
                    )));
                }
                Target::Peer {
                    name: view.name,
                    cert_sha256,
                }
            }
        };
        Ok(Record {
            id,
            hlc: Hlc(hlc),
            target,
            expires_at: view.expires_at,
            reason: view.reason,
            actor: crate::actor::compose(&view.actor, view.on_behalf_of.as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NodeId, Revocation};

    #[test]
    fn every_scope_writes_and_reads_back() {
        let targets = [
            Target::Token {
                iss: Some("https://idp".into()),
                jti: "j".into(),
            },
            Target::TokenHash { sha256: [1; 32] },
            Target::Session {
                iss: None,
                sid: "s".into(),
            },
            Target::Subject {
                iss: Some("i".into()),
                sub: "alice".into(),
                before: 3,
            },
            Target::Client {
                iss: None,
                client_id: "c".into(),
                before: 4,
            },
            Target::Issuer {
                iss: "i".into(),
                before: 5,
            },
            Target::Key {
                iss: None,
                kid: "k".into(),
            },
            Target::Peer {
                name: Some("eu-west".into()),
                cert_sha256: None,
            },
            Target::Peer {
                name: None,
                cert_sha256: Some([0xab; 32]),
            },
            Target::Peer {
                name: Some("eu-west".into()),
                cert_sha256: Some([0xcd; 32]),
            },
        ];
        for (seq, target) in targets.into_iter().enumerate() {
            let record = Revocation {
                target,
                expires_at: 1_700_086_400,
                reason: "laptop stolen".into(),
                actor: "admin".into(),
            }
            .into_record(
                RecordId {
                    origin: NodeId::new(0xab),
                    seq: seq as u64 + 1,
                },
                Hlc(7_302_459_174_400_393_216),
            );
            let json = serde_json::to_string(&RecordView::from(&record)).unwrap();
            let view: RecordView = serde_json::from_str(&json).unwrap();
            assert_eq!(Record::try_from(view).unwrap(), record, "{json}");
        }
    }

    #[test]
    fn the_documented_form_reads_back() {
        let json = r#"{"id":"00000000000000ab-7","scope":"subject","iss":"https://idp","sub":"alice","before":1700000000,"expires_at":1700086400,"reason":"laptop stolen","actor":"admin","origin":"00000000000000ab","seq":7,"hlc":"7302459174400393216","revoked_at":1700000000}"#;
        let view: RecordView = serde_json::from_str(json).unwrap();
        let back = serde_json::to_value(&view).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
        let record = Record::try_from(view).unwrap();
        assert_eq!(record.reason, "laptop stolen");
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
            r#"{"id":"00000000000000ab-1","scope":"peer","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
            r#"{"id":"00000000000000ab-1","scope":"peer","cert_sha256":"abc","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":1,"hlc":"1","revoked_at":0}"#,
        ] {
            let view: RecordView = serde_json::from_str(json).unwrap();
            assert!(Record::try_from(view).is_err(), "{json}");
        }
    }
}
