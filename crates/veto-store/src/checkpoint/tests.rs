//! A checkpoint write interrupted at each point leaves a checkpoint that,
//! with its log of prunes and the records stored since, comes to exactly the
//! store's records: a crash costs a restart its speed at worst, never its
//! checkpoint.

use std::collections::BTreeSet;
use std::time::Duration;

use veto_core::{Hlc, NodeId, Record, RecordId, SetDigest, Target};

use super::CheckpointError;
use crate::{OpenOptions, Store};

fn id(seq: u64) -> RecordId {
    RecordId {
        origin: NodeId::new(1),
        seq,
    }
}

fn tokens(seqs: std::ops::RangeInclusive<u64>) -> Vec<Record> {
    seqs.map(|seq| Record {
        id: id(seq),
        hlc: Hlc::from_unix(Duration::from_secs(1_700_000_000 + seq)),
        target: Target::Token {
            iss: Some("https://login.example.com".into()),
            jti: format!("jti-{seq}"),
        },
        expires_at: 1_800_000_000,
        reason: String::new(),
        actor: "admin".into(),
    })
    .collect()
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, OpenOptions::default()).unwrap()
}

/// What a restart does with the checkpoint, as the node does it: its
/// digest, less the prunes logged since, plus the records stored since. `None`
/// if there is no usable checkpoint.
fn restart_digest(store: &Store) -> Option<(u64, SetDigest)> {
    let checkpoint = store.read_checkpoint(|_, _| {}).ok()??;
    let mut digest = checkpoint.digest;
    store
        .for_each_pruned_since_checkpoint(|r| {
            if checkpoint.covered.contains(r.id) {
                digest.remove(&r.fingerprint());
            }
        })
        .unwrap();
    let covered = store.covered().unwrap();
    for (origin, ranges) in covered.missing_in(&checkpoint.covered) {
        for seqs in ranges {
            for r in store.read_range(origin, seqs, usize::MAX).unwrap() {
                digest.add(&r.fingerprint());
            }
        }
    }
    Some((checkpoint.epoch, digest))
}

/// A store with a checkpoint, prunes since it and records stored since it.
fn store_with_changes_since_a_checkpoint(dir: &std::path::Path) -> Store {
    let store = open(dir);
    store.append(&tokens(1..=100)).unwrap();
    store.write_checkpoint().unwrap();
    store.prune(&(1..=10).map(id).collect::<Vec<_>>()).unwrap();
    store.append(&tokens(101..=120)).unwrap();
    store
}

#[test]
fn a_write_that_fails_before_its_rename_leaves_the_last_checkpoint_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_changes_since_a_checkpoint(dir.path());
    // The file cannot be written aside: the write fails where a crash
    // during the scan would stop it.
    let tmp = store.checkpoint_path().with_extension("checkpoint.tmp");
    std::fs::create_dir(&tmp).unwrap();
    assert!(matches!(
        store.write_checkpoint(),
        Err(CheckpointError::Io { .. })
    ));
    drop(store);

    let store = open(dir.path());
    assert_eq!(
        restart_digest(&store),
        Some((1, store.digest().unwrap())),
        "the last checkpoint, its log and the records since no longer add up"
    );
    // Once the file can be written, a new checkpoint takes over.
    std::fs::remove_dir(&tmp).unwrap();
    store.write_checkpoint().unwrap();
    assert_eq!(restart_digest(&store), Some((2, store.digest().unwrap())));
}

#[test]
fn a_crash_after_the_rename_retires_the_old_log_on_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_changes_since_a_checkpoint(dir.path());
    // The new file is in place; the log of the old one is not yet retired.
    store.write_checkpoint_file(2, super::Source::Scan).unwrap();
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.pruned_log_epoch().unwrap(), 1);
    assert_eq!(restart_digest(&store), Some((2, store.digest().unwrap())));
    assert_eq!(store.pruned_log_epoch().unwrap(), 2);
    let mut logged = 0;
    store
        .for_each_pruned_since_checkpoint(|_| logged += 1)
        .unwrap();
    assert_eq!(logged, 0, "the old checkpoint's prunes are still logged");

    // Prunes after it are logged for it, and survive a reopen.
    store.prune(&[id(50), id(51)]).unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(restart_digest(&store), Some((2, store.digest().unwrap())));
}

#[test]
fn a_checkpoint_of_another_epoch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_changes_since_a_checkpoint(dir.path());
    let first = std::fs::read(store.checkpoint_path()).unwrap();
    store.write_checkpoint().unwrap();
    store.prune(&[id(60)]).unwrap();
    store.write_checkpoint().unwrap();
    // An old copy of the file put back: its log of prunes is gone.
    std::fs::write(store.checkpoint_path(), first).unwrap();
    match store.read_checkpoint(|_, _| {}) {
        Err(CheckpointError::Format { detail, .. }) => {
            assert!(detail.contains("epoch 1"), "{detail}")
        }
        other => panic!("{:?}", other.map(|c| c.map(|c| c.epoch))),
    }
}

/// What a checkpoint holds: its keys, its records without one, its digest
/// and what it covers.
fn contents(store: &Store) -> (BTreeSet<(RecordId, u64, u64)>, Vec<RecordId>, SetDigest) {
    let mut keys = BTreeSet::new();
    let c = store
        .read_checkpoint(|id, k| {
            keys.insert((id, k.key, k.iss));
        })
        .unwrap()
        .unwrap();
    (keys, c.others, c.digest)
}

#[test]
fn a_checkpoint_from_the_last_one_holds_what_a_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_changes_since_a_checkpoint(dir.path());
    // A record stored after the last checkpoint and pruned since.
    store.prune(&[id(110)]).unwrap();
    store.update_checkpoint().unwrap();
    assert_eq!(restart_digest(&store), Some((2, store.digest().unwrap())));
    let updated = contents(&store);
    assert_eq!(updated.0.len(), 100 - 10 + 20 - 1);

    store.write_checkpoint().unwrap();
    assert_eq!(contents(&store), updated);

    // Twice in a row, with changes between.
    store.append(&tokens(121..=130)).unwrap();
    store.prune(&[id(20), id(125)]).unwrap();
    store.update_checkpoint().unwrap();
    let updated = contents(&store);
    store.write_checkpoint().unwrap();
    assert_eq!(contents(&store), updated);
}

#[test]
fn without_a_last_checkpoint_an_update_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.append(&tokens(1..=10)).unwrap();
    assert!(matches!(
        store.update_checkpoint(),
        Err(CheckpointError::Io { .. })
    ));
    assert!(store.read_checkpoint(|_, _| {}).unwrap().is_none());
}
