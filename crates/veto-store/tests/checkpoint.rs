//! The index checkpoint against a real sled data directory: it holds the
//! key of every record covered when it was started, the prunes since are
//! logged, and a damaged or foreign file is refused.

mod common;

use std::collections::BTreeSet;

use common::{id, token, with_target};
use veto_core::{IndexKey, Record, RecordId, Target};
use veto_store::{CheckpointError, OpenOptions, Store};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, OpenOptions::default()).unwrap()
}

fn sample() -> Vec<Record> {
    let mut out: Vec<Record> = (1..=200)
        .map(|seq| token(1, seq, 1_700_000_000 + seq, 1_700_100_000 + seq))
        .collect();
    out.push(with_target(
        token(2, 1, 1_700_000_000, 1_700_100_000),
        Target::Subject {
            iss: Some("https://idp.example".into()),
            sub: "alice".into(),
            before: 1_700_000_000,
        },
    ));
    out.push(with_target(
        token(2, 2, 1_700_000_000, 1_700_100_000),
        Target::Peer {
            name: Some("eu-1".into()),
            cert_sha256: None,
        },
    ));
    out
}

#[test]
fn a_checkpoint_holds_every_key_and_what_changed_since_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let records = sample();
    store.append(&records).unwrap();
    assert!(store.read_checkpoint(|_, _| {}).unwrap().is_none());

    let stats = store.write_checkpoint().unwrap();
    assert_eq!(stats.records, records.len() as u64);
    let mut keys = Vec::new();
    let c = store
        .read_checkpoint(|id, k| keys.push((id, k)))
        .unwrap()
        .unwrap();
    assert_eq!(c.digest, store.digest().unwrap());
    assert_eq!(c.covered, store.covered().unwrap());
    assert_eq!(c.keys, keys.len() as u64);
    let want: BTreeSet<(RecordId, (u64, u64, u64))> = records
        .iter()
        .filter_map(|r| IndexKey::of(&r.target).map(|k| (r.id, (k.key, k.iss, k.before))))
        .collect();
    let got: BTreeSet<(RecordId, (u64, u64, u64))> = keys
        .iter()
        .map(|(id, k)| {
            assert_eq!(
                Some(*k),
                IndexKey::of(&records.iter().find(|r| r.id == *id).unwrap().target)
            );
            (*id, (k.key, k.iss, k.before))
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(c.others, vec![id(2, 2)]);

    // After it: a new record is outside what it covers, and a prune is logged.
    store
        .append(&[token(1, 201, 1_700_000_500, 1_700_100_500)])
        .unwrap();
    store.prune(&[id(1, 1), id(1, 2)]).unwrap();
    let mut pruned = Vec::new();
    store
        .for_each_pruned_since_checkpoint(|r| pruned.push(r))
        .unwrap();
    assert_eq!(pruned, records[..2].to_vec());
    let c = store.read_checkpoint(|_, _| {}).unwrap().unwrap();
    assert!(!c.covered.contains(id(1, 201)));
    // The checkpoint's digest, plus what came, minus what went, is the store's.
    let mut digest = c.digest;
    digest.add(&store.get(id(1, 201)).unwrap().unwrap().fingerprint());
    for r in &pruned {
        digest.remove(&r.fingerprint());
    }
    assert_eq!(digest, store.digest().unwrap());

    // A new checkpoint takes all of it in, and empties the log; both survive
    // a reopen.
    store.write_checkpoint().unwrap();
    drop(store);
    let store = open(dir.path());
    let mut pruned = 0;
    store
        .for_each_pruned_since_checkpoint(|_| pruned += 1)
        .unwrap();
    assert_eq!(pruned, 0);
    let c = store.read_checkpoint(|_, _| {}).unwrap().unwrap();
    assert_eq!(c.keys, 200 - 2 + 1 + 1);
    assert_eq!(c.digest, store.digest().unwrap());
}

#[test]
fn a_damaged_or_foreign_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&sample()).unwrap();
    store.write_checkpoint().unwrap();
    let path = store.checkpoint_path();
    let good = std::fs::read(&path).unwrap();

    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("a flipped bit", {
            let mut b = good.clone();
            b[good.len() / 3] ^= 1;
            b
        }),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        match store.read_checkpoint(|_, _| {}) {
            Err(CheckpointError::Format { detail, .. }) => assert!(!detail.is_empty(), "{what}"),
            other => panic!("{what}: {:?}", other.map(|c| c.map(|c| c.keys))),
        }
    }

    // Another data dir's checkpoint, copied in.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(other_dir.path());
    other.append(&sample()).unwrap();
    other.write_checkpoint().unwrap();
    std::fs::copy(other.checkpoint_path(), &path).unwrap();
    match store.read_checkpoint(|_, _| {}) {
        Err(CheckpointError::Format { detail, .. }) => {
            assert!(detail.contains("not this data dir"), "{detail}")
        }
        other => panic!("{:?}", other.map(|c| c.map(|c| c.keys))),
    }
}
