//! Record builders shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use veto_core::{Hlc, NodeId, Record, RecordId, Target};

pub(crate) fn node(n: u64) -> NodeId {
    NodeId::new(n)
}

pub(crate) fn id(origin: u64, seq: u64) -> RecordId {
    RecordId {
        origin: node(origin),
        seq,
    }
}

/// A token-scope record shaped like a real one: an issuer URL, a UUID-sized jti.
pub(crate) fn token(origin: u64, seq: u64, revoked_at: u64, expires_at: u64) -> Record {
    Record {
        id: id(origin, seq),
        hlc: Hlc::from_unix(Duration::from_secs(revoked_at) + Duration::from_nanos(seq % 1000)),
        target: Target::Token {
            iss: Some("https://login.example.com".into()),
            jti: format!("{origin:08x}-{seq:012x}-4a7b-9c1d-2e3f4a5b6c7d"),
        },
        expires_at,
        reason: "logout".into(),
        actor: "admin@example.com".into(),
    }
}

pub(crate) fn with_target(mut r: Record, target: Target) -> Record {
    r.target = target;
    r
}
