//! Opening data directories that cannot be used, and reading damaged data.

mod common;

use common::{id, token};
use veto_store::{OpenError, OpenOptions, Store, StoreError};

#[test]
fn a_second_open_of_the_same_dir_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path(), OpenOptions::default()).unwrap();
    let err = Store::open(dir.path(), OpenOptions::default()).unwrap_err();
    assert!(
        matches!(&err, OpenError::Locked { path } if path == dir.path()),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("locked"), "{msg}");
    assert!(!msg.contains('\n'));
    // The first handle still works, and the lock goes with it.
    first.append(&[token(1, 1, 1, 2)]).unwrap();
    drop(first);
    let again = Store::open(dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(again.live_count(), 1);
}

#[test]
fn a_dir_under_a_regular_file_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let target = file.join("data");
    let err = Store::open(&target, OpenOptions::default()).unwrap_err();
    assert!(
        matches!(&err, OpenError::CreateDir { path, .. } if *path == target),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("cannot create data dir"), "{msg}");
    assert!(msg.contains(&target.display().to_string()), "{msg}");
    assert!(!msg.contains('\n'));
}

#[test]
fn a_regular_file_as_the_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file, OpenOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::CreateDir { .. }), "{err:?}");
}

/// Rewrites one value of the sled database behind a closed store.
fn tamper(dir: &std::path::Path, tree: &str, key: &[u8], value: &[u8]) {
    // sled's background threads let go of the lock shortly after the store
    // is dropped; on a loaded machine that can take a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open {}: {e}", dir.display()),
        }
    };
    db.open_tree(tree).unwrap().insert(key, value).unwrap();
    db.flush().unwrap();
}

fn chunk_key(origin: u64, block: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&origin.to_be_bytes());
    k[8..].copy_from_slice(&block.to_be_bytes());
    k
}

#[test]
fn a_damaged_record_is_a_corrupt_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
        store
            .append(&[token(1, 1, 1, 2), token(1, 2, 1, 2)])
            .unwrap();
    }
    tamper(dir.path(), "records", &chunk_key(1, 0), b"\x01garbage");
    let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
    let err = store.get(id(1, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                tree: "records",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("chunk 0000000000000001/0"),
        "{err}"
    );
    assert!(store.for_each_record(|_| {}).is_err());
    assert!(store.for_each_target(|_, _| {}).is_err());
}

#[test]
fn a_damaged_frontier_fails_the_open_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
        store.append(&[token(1, 1, 1, 2)]).unwrap();
    }
    tamper(
        dir.path(),
        "meta",
        b"frontier",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    );
    let err = Store::open(dir.path(), OpenOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("frontier"), "{err}");
}

#[test]
fn a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), OpenOptions::default()).unwrap());
    tamper(dir.path(), "meta", b"format", &99u32.to_be_bytes());
    let err = Store::open(dir.path(), OpenOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::UnsupportedFormat {
                found: 99,
                expected: 1,
                ..
            }
        ),
        "{err:?}"
    );
}
