//! The lookup index answers exactly as a scan over the records does
//! ([`veto_core::check::scan`], built on [`Check::matched_by`]), before and after
//! garbage collection.

mod common;

use std::collections::BTreeMap;

use common::{any_check, any_records, any_target};
use proptest::prelude::*;
use veto_core::check::scan;
use veto_core::Claims;
use veto_core::{Check, Hit, LookupIndex, NodeId, Record, RecordId, Target};

fn index_of<'r>(records: impl IntoIterator<Item = &'r Record>) -> LookupIndex {
    let mut index = LookupIndex::new();
    for r in records {
        index.insert_record(r).unwrap();
    }
    index
}

/// The index agrees with the scan on whether `check` is revoked, and a hit names
/// a live record that really matches, in the scope of that record.
fn agrees(
    index: &LookupIndex,
    live: &BTreeMap<RecordId, &Record>,
    check: &Check<'_>,
) -> Result<(), TestCaseError> {
    let expected = scan(live.values().copied(), check);
    let got = index.check(check);
    prop_assert_eq!(
        got.is_some(),
        expected.is_some(),
        "index said {:?}, scan found {:?}",
        got,
        expected
    );
    if let Some(Hit { scope, record }) = got {
        let r = live.get(&record);
        prop_assert!(r.is_some(), "hit names {} which is not live", record);
        let r = r.unwrap();
        prop_assert!(
            check.matched_by(&r.target),
            "hit {:?} does not match",
            r.target
        );
        prop_assert_eq!(scope, r.target.kind());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn index_equals_scan(records in any_records(), checks in prop::collection::vec(any_check(), 1..40)) {
        let index = index_of(&records);
        prop_assert_eq!(index.len(), records.len());
        let live: BTreeMap<RecordId, &Record> = records.iter().map(|r| (r.id, r)).collect();
        for c in &checks {
            agrees(&index, &live, &c.as_check())?;
        }
    }

    #[test]
    fn index_equals_scan_after_gc(
        records in any_records(),
        removed in prop::collection::vec(any::<bool>(), 40),
        checks in prop::collection::vec(any_check(), 1..40),
    ) {
        let mut index = index_of(&records);
        let mut live: BTreeMap<RecordId, &Record> = records.iter().map(|r| (r.id, r)).collect();
        for (r, gone) in records.iter().zip(&removed) {
            if *gone {
                index.remove(r.id, &r.target);
                live.remove(&r.id);
            }
        }
        prop_assert_eq!(index.len(), live.len());
        for c in &checks {
            agrees(&index, &live, &c.as_check())?;
        }
        // Removing again, or removing what was never there, changes nothing.
        for (r, gone) in records.iter().zip(&removed) {
            if *gone {
                index.remove(r.id, &r.target);
            }
        }
        index.remove(RecordId { origin: NodeId::new(0x9999), seq: 1 }, &Target::Issuer { iss: "x".into(), before: 1 });
        prop_assert_eq!(index.len(), live.len());
        for c in &checks {
            agrees(&index, &live, &c.as_check())?;
        }
    }

    /// A `peer` record is not a token scope: whatever its name or
    /// fingerprint, no check finds it, and the index answers as it would
    /// without it.
    #[test]
    fn peer_records_revoke_no_token(
        records in any_records(),
        names in prop::collection::vec(prop::option::of(0usize..4), 1..6),
        checks in prop::collection::vec(any_check(), 1..40),
    ) {
        let keys = ["alice", "j1", "s1", "https://idp.example"];
        let peers: Vec<Record> = names.iter().enumerate().map(|(i, name)| Record {
            id: common::id(0, 1_000 + i as u64),
            hlc: veto_core::Hlc(0),
            target: Target::Peer {
                name: name.map(|n| keys[n].to_owned()),
                cert_sha256: Some([i as u8; 32]),
            },
            expires_at: u64::MAX,
            reason: String::new(),
            actor: String::new(),
        }).collect();
        let with = index_of(records.iter().chain(&peers));
        let without = index_of(&records);
        prop_assert_eq!(with.len(), records.len());
        for c in &checks {
            let c = c.as_check();
            prop_assert_eq!(with.check(&c), without.check(&c));
            for p in &peers {
                prop_assert!(!c.matched_by(&p.target));
            }
        }
    }

    /// Inserting a record twice, or in another order, answers alike.
    #[test]
    fn insert_is_idempotent_and_order_free(records in any_records(), checks in prop::collection::vec(any_check(), 1..40)) {
        let once = index_of(&records);
        let twice = index_of(records.iter().rev().chain(&records));
        prop_assert_eq!(twice.len(), records.len());
        for c in &checks {
            let c = c.as_check();
            prop_assert_eq!(once.check(&c).is_some(), twice.check(&c).is_some());
        }
    }

    /// A check that carries exactly what a record names, with an `iat` before
    /// any cutoff, is always revoked.
    #[test]
    fn every_record_revokes_its_own_token(target in any_target(), iat in prop::option::of(0u64..100)) {
        let record = Record {
            id: common::id(0, 1),
            hlc: veto_core::Hlc(0),
            target: target.clone(),
            expires_at: 0,
            reason: String::new(),
            actor: String::new(),
        };
        let index = index_of([&record]);
        let fields = fields_naming(&target, iat);
        let check = fields.as_check();
        prop_assert!(check.matched_by(&target));
        prop_assert_eq!(index.check(&check).map(|h| h.record), Some(record.id));
    }
}

fn fields_naming(target: &Target, iat: Option<u64>) -> Claims {
    let mut f = Claims {
        iss: target.iss().map(str::to_owned),
        sub: None,
        jti: None,
        sid: None,
        client_id: None,
        kid: None,
        iat,
        token_sha256: None,
        exp: None,
    };
    match target {
        Target::Token { jti, .. } => f.jti = Some(jti.clone()),
        Target::TokenHash { sha256 } => f.token_sha256 = Some(*sha256),
        Target::Session { sid, .. } => f.sid = Some(sid.clone()),
        Target::Subject { sub, .. } => f.sub = Some(sub.clone()),
        Target::Client { client_id, .. } => f.client_id = Some(client_id.clone()),
        Target::Issuer { .. } => {}
        Target::Key { kid, .. } => f.kid = Some(kid.clone()),
        Target::Peer { .. } => {}
    }
    f
}

fn token(origin: u64, seq: u64, iss: Option<&str>, jti: &str) -> Record {
    Record {
        id: RecordId {
            origin: NodeId::new(origin),
            seq,
        },
        hlc: veto_core::Hlc(0),
        target: Target::Token {
            iss: iss.map(str::to_owned),
            jti: jti.to_owned(),
        },
        expires_at: 0,
        reason: String::new(),
        actor: String::new(),
    }
}

/// Removing an id whose seq does not fit the index must not touch the record of
/// another origin that the overflowing bits happen to spell.
#[test]
fn removing_an_oversized_seq_leaves_other_records_alone() {
    let first = token(0xa, 5, None, "j");
    let second = token(0xb, 5, None, "j");
    let mut index = index_of([&first, &second]);
    let oversized = RecordId {
        origin: first.id.origin,
        seq: (1 << 48) | 5,
    };
    assert!(index.insert(oversized, &second.target).is_err());
    index.remove(oversized, &second.target);
    assert_eq!(index.len(), 2);
    index.remove(first.id, &first.target);
    let check = Check {
        jti: Some("j"),
        ..Check::default()
    };
    assert_eq!(index.check(&check).map(|h| h.record), Some(second.id));
}

/// Of several cutoffs on one key, a hit names the latest one that applies.
#[test]
fn a_bulk_hit_names_the_deciding_cutoff() {
    let subject = |seq, iss: Option<&str>, before| Record {
        id: common::id(0, seq),
        hlc: veto_core::Hlc(0),
        target: Target::Subject {
            iss: iss.map(str::to_owned),
            sub: "alice".into(),
            before,
        },
        expires_at: 0,
        reason: String::new(),
        actor: String::new(),
    };
    let records = [
        subject(1, None, 100),
        subject(2, Some("https://a"), 300),
        subject(3, Some("https://b"), 500),
    ];
    let index = index_of(&records);
    let hit = |iss, iat| {
        index
            .check(&Check {
                iss,
                sub: Some("alice"),
                iat,
                ..Check::default()
            })
            .map(|h| h.record.seq)
    };
    assert_eq!(hit(Some("https://a"), Some(50)), Some(2));
    assert_eq!(hit(Some("https://a"), Some(200)), Some(2));
    assert_eq!(hit(Some("https://a"), Some(300)), None);
    assert_eq!(hit(Some("https://c"), Some(50)), Some(1));
    assert_eq!(hit(Some("https://c"), Some(100)), None);
    // Without an issuer or an iat the token fails closed.
    assert_eq!(hit(None, Some(400)), Some(3));
    assert_eq!(hit(Some("https://c"), None), Some(1));
}
