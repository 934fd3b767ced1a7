//! Round trips through a real sled data directory.

mod common;

use std::collections::BTreeSet;

use common::{id, node, token, with_target};
use veto_core::{AuditQuery, Record, RevocationSet, ScopeKind, Target};
use veto_store::{OpenOptions, PeerEntry, Store, StoreError};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, OpenOptions::default()).unwrap()
}

/// Records of two origins, more than one chunk each, with interleaved stamps.
fn sample() -> Vec<Record> {
    let mut out = Vec::new();
    for seq in 1..=150 {
        out.push(token(1, seq, 1_700_000_000 + seq * 2, 1_700_100_000 + seq));
        out.push(token(2, seq, 1_700_000_001 + seq * 2, 1_700_200_000 - seq));
    }
    out
}

#[test]
fn append_get_read_range_and_covered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.live_count(), 0);
    let records = sample();
    let fresh = store.append(&records).unwrap();
    assert_eq!(fresh, records);
    assert_eq!(store.live_count(), 300);

    for r in &records {
        assert_eq!(store.get(r.id).unwrap().as_ref(), Some(r));
    }
    assert_eq!(store.get(id(1, 151)).unwrap(), None);
    assert_eq!(store.get(id(3, 1)).unwrap(), None);

    let range = store.read_range(node(1), 60..=70, 100).unwrap();
    let seqs: Vec<u64> = range.iter().map(|r| r.id.seq).collect();
    assert_eq!(seqs, (60..=70).collect::<Vec<_>>());
    assert!(range.iter().all(|r| r.id.origin == node(1)));
    let capped = store.read_range(node(2), 1..=150, 7).unwrap();
    assert_eq!(capped.len(), 7);
    assert_eq!(capped[6].id, id(2, 7));
    assert!(store
        .read_range(node(2), 151..=1000, 10)
        .unwrap()
        .is_empty());
    assert!(store.read_range(node(9), 1..=10, 10).unwrap().is_empty());

    let covered = store.covered().unwrap();
    assert_eq!(covered.count(), 300);
    assert_eq!(covered.origin(node(1)).unwrap().contiguous(), 150);

    let mut model = RevocationSet::new();
    for r in &records {
        model.insert(r.clone());
    }
    assert_eq!(store.digest().unwrap(), model.digest());
}

#[test]
fn duplicates_are_skipped_within_and_across_calls() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = token(1, 1, 1_700_000_000, 1_800_000_000);
    let b = token(1, 2, 1_700_000_001, 1_800_000_000);
    assert_eq!(
        store.append(&[a.clone(), a.clone()]).unwrap(),
        vec![a.clone()]
    );
    assert_eq!(
        store.append(&[a.clone(), b.clone()]).unwrap(),
        vec![b.clone()]
    );
    assert!(store.append(&[a, b]).unwrap().is_empty());
    assert_eq!(store.live_count(), 2);
}

#[test]
fn out_of_order_seqs_fill_chunks_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Seqs arrive in a scattered order across several calls and chunk borders.
    let order = [130u64, 1, 64, 63, 65, 200, 2, 129, 128, 127];
    for seq in order {
        let r = token(4, seq, 1_700_000_000 + seq, 1_800_000_000);
        assert_eq!(store.append(&[r]).unwrap().len(), 1);
    }
    let all = store.read_range(node(4), 1..=u64::MAX, 100).unwrap();
    let mut sorted = order.to_vec();
    sorted.sort();
    assert_eq!(all.iter().map(|r| r.id.seq).collect::<Vec<_>>(), sorted);
    let covered = store.covered().unwrap();
    assert_eq!(covered.origin(node(4)).unwrap().contiguous(), 2);
    assert_eq!(covered.count(), order.len() as u64);
}

fn model_audit(records: &[Record], q: &AuditQuery) -> Vec<Record> {
    let mut all: Vec<&Record> = records.iter().filter(|r| q.matches(r)).collect();
    all.sort_by_key(|r| std::cmp::Reverse((r.hlc, r.id)));
    all.into_iter().take(q.limit).cloned().collect()
}

#[test]
fn audit_is_newest_first_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut records = sample();
    // Some other scopes, and a late arrival from the past in a later call.
    records.push(with_target(
        token(3, 1, 1_700_000_100, 1_800_000_000),
        Target::Session {
            iss: None,
            sid: "sess-42".into(),
        },
    ));
    records.push(with_target(
        token(3, 2, 1_700_000_500, 1_800_000_000),
        Target::Subject {
            iss: Some("https://other.example".into()),
            sub: "alice".into(),
            before: 1_700_000_500,
        },
    ));
    store.append(&records[..200]).unwrap();
    store.append(&records[200..]).unwrap();

    let queries = [
        AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        },
        AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        },
        AuditQuery {
            origin: Some(node(2)),
            limit: 5,
            ..AuditQuery::default()
        },
        AuditQuery {
            scope: Some(ScopeKind::Session),
            limit: 5,
            ..AuditQuery::default()
        },
        AuditQuery {
            key: Some("alice".into()),
            limit: 5,
            ..AuditQuery::default()
        },
        AuditQuery {
            key: Some("https://other.example".into()),
            limit: 5,
            ..AuditQuery::default()
        },
        AuditQuery {
            since: Some(1_700_000_100),
            until: Some(1_700_000_150),
            limit: 100,
            ..AuditQuery::default()
        },
        AuditQuery {
            until: Some(1_700_000_010),
            limit: 100,
            ..AuditQuery::default()
        },
        AuditQuery {
            since: Some(1_700_000_290),
            limit: 100,
            ..AuditQuery::default()
        },
        AuditQuery {
            since: Some(u64::MAX),
            limit: 100,
            ..AuditQuery::default()
        },
    ];
    for q in &queries {
        let got = store.audit(q).unwrap();
        assert_eq!(got, model_audit(&records, q), "query {q:?}");
    }
    // No limit means the default page.
    let page = store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(page.len(), veto_core::audit::DEFAULT_AUDIT_LIMIT);
}

#[test]
fn expired_lists_what_gc_may_prune() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let records: Vec<Record> = (1..=200)
        .map(|seq| token(1, seq, 1_000 + seq, 10_000 + (seq * 37) % 500))
        .collect();
    store.append(&records).unwrap();
    let (now, grace) = (10_300, 50);
    let expected: BTreeSet<_> = records
        .iter()
        .filter(|r| r.expires_at + grace < now)
        .map(|r| r.id)
        .collect();
    let got = store.expired(now, grace, 10_000).unwrap();
    assert_eq!(got.iter().map(|r| r.id).collect::<BTreeSet<_>>(), expected);
    assert_eq!(got.len(), expected.len());
    assert_eq!(store.expired(now, grace, 3).unwrap().len(), 3);
    assert!(store.expired(now, now, 10).unwrap().is_empty());
    assert!(store.expired(10, 50, 10).unwrap().is_empty());
    assert!(store.expired(now, grace, 0).unwrap().is_empty());
}

#[test]
fn pruned_records_stay_covered_and_are_never_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample();
    let victims: Vec<_> = records.iter().step_by(3).map(|r| r.id).collect();
    {
        let store = open(dir.path());
        store.append(&records).unwrap();
        let mut ids = victims.clone();
        ids.push(victims[0]); // a repeat counts once
        ids.push(id(9, 5)); // never stored: covered anyway
        assert_eq!(store.prune(&ids).unwrap(), victims.len());
        assert_eq!(store.prune(&victims).unwrap(), 0);
        assert_eq!(store.live_count(), (records.len() - victims.len()) as u64);
        for v in &victims {
            assert_eq!(store.get(*v).unwrap(), None);
        }
        assert!(store.covered().unwrap().contains(id(9, 5)));
    }
    let store = open(dir.path());
    let covered = store.covered().unwrap();
    for r in &records {
        assert!(covered.contains(r.id));
    }
    assert!(covered.contains(id(9, 5)));
    // Re-sent by a lagging peer: skipped.
    assert!(store.append(&records).unwrap().is_empty());
    for v in &victims {
        assert_eq!(store.get(*v).unwrap(), None);
    }
    let all = store
        .audit(&AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(all.len(), records.len() - victims.len());
    assert!(all.iter().all(|r| !victims.contains(&r.id)));
    let expired = store.expired(u64::MAX, 0, 10_000).unwrap();
    assert_eq!(expired.len(), records.len() - victims.len());
    let mut model = RevocationSet::new();
    for r in &records {
        model.insert(r.clone());
    }
    for v in &victims {
        model.prune(*v);
    }
    assert_eq!(store.digest().unwrap(), model.digest());
    assert_eq!(store.live_count(), model.len() as u64);
}

#[test]
fn pruning_whole_chunks_removes_them_from_every_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let records = sample();
    store.append(&records).unwrap();
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    assert_eq!(store.prune(&ids).unwrap(), records.len());
    assert_eq!(store.live_count(), 0);
    assert!(store.audit(&AuditQuery::default()).unwrap().is_empty());
    assert!(store.expired(u64::MAX, 0, 10).unwrap().is_empty());
    let mut n = 0;
    store.for_each_record(|_| n += 1).unwrap();
    assert_eq!(n, 0);
    assert_eq!(store.covered().unwrap().count(), records.len() as u64);
}

#[test]
fn covered_ids_are_skipped_by_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.cover(&[id(5, 1), id(5, 2)]).unwrap();
    let mut other = veto_core::Frontier::new();
    other.insert_range(node(6), 1..=10);
    store.cover_frontier(&other).unwrap();
    let offered = [
        token(5, 1, 1, 2),
        token(5, 3, 1, 2),
        token(6, 10, 1, 2),
        token(6, 11, 1, 2),
    ];
    let fresh = store.append(&offered).unwrap();
    assert_eq!(
        fresh.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![id(5, 3), id(6, 11)]
    );
    assert_eq!(store.covered().unwrap().count(), 2 + 10 + 2);
    assert_eq!(store.live_count(), 2);
}

#[test]
fn iteration_yields_every_live_record_and_target() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let records = sample();
    store.append(&records).unwrap();
    let mut seen = Vec::new();
    store.for_each_record(|r| seen.push(r)).unwrap();
    let mut expected = records.clone();
    expected.sort_by_key(|r| r.id);
    assert_eq!(seen, expected);
    let mut targets = Vec::new();
    store.for_each_target(|i, t| targets.push((i, t))).unwrap();
    let expected: Vec<_> = expected.into_iter().map(|r| (r.id, r.target)).collect();
    assert_eq!(targets, expected);
}

#[test]
fn peers_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        assert!(store.peers().unwrap().is_empty());
        let a = PeerEntry {
            addr: "eu.example:7401".into(),
            name: Some("eu".into()),
        };
        let b = PeerEntry {
            addr: "us.example:7401".into(),
            name: None,
        };
        store.put_peer(&b).unwrap();
        store.put_peer(&a).unwrap();
        assert_eq!(store.peers().unwrap(), vec![a.clone(), b.clone()]);
        let renamed = PeerEntry {
            name: Some("us-east".into()),
            ..b
        };
        store.put_peer(&renamed).unwrap();
        assert_eq!(store.peers().unwrap(), vec![a.clone(), renamed.clone()]);
        assert!(store.remove_peer("eu.example:7401").unwrap());
        assert!(!store.remove_peer("eu.example:7401").unwrap());
        let empty = PeerEntry {
            addr: String::new(),
            name: None,
        };
        assert!(matches!(
            store.put_peer(&empty),
            Err(StoreError::Invalid(_))
        ));
    }
    let store = open(dir.path());
    assert_eq!(
        store.peers().unwrap(),
        vec![PeerEntry {
            addr: "us.example:7401".into(),
            name: Some("us-east".into())
        }]
    );
}

#[test]
fn reopen_keeps_everything_and_the_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let records = sample();
    let (node_id, digest, covered) = {
        let store = open(dir.path());
        store.append(&records).unwrap();
        store.put_setting("admin-token-hint", b"abc").unwrap();
        (
            store.node_id(),
            store.digest().unwrap(),
            store.covered().unwrap(),
        )
    };
    let store = open(dir.path());
    assert_eq!(store.node_id(), node_id);
    assert_eq!(store.digest().unwrap(), digest);
    assert_eq!(store.covered().unwrap(), covered);
    assert_eq!(store.live_count(), records.len() as u64);
    assert_eq!(
        store.setting("admin-token-hint").unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(store.setting("absent").unwrap(), None);
    for r in &records {
        assert_eq!(store.get(r.id).unwrap().as_ref(), Some(r));
    }
    // A fresh directory gets a different identity.
    let other = tempfile::tempdir().unwrap();
    assert_ne!(open(other.path()).node_id(), node_id);
}

#[test]
fn concurrent_appends_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    std::thread::scope(|s| {
        for origin in 1..=4u64 {
            let store = store.clone();
            s.spawn(move || {
                for chunk in 0..10u64 {
                    let batch: Vec<_> = (1..=50)
                        .map(|i| token(origin, chunk * 50 + i, 1_700_000_000 + i, 1_800_000_000))
                        .collect();
                    assert_eq!(store.append(&batch).unwrap().len(), 50);
                }
            });
        }
    });
    assert_eq!(store.live_count(), 2_000);
    let covered = store.covered().unwrap();
    for origin in 1..=4 {
        assert_eq!(covered.origin(node(origin)).unwrap().contiguous(), 500);
    }
}
