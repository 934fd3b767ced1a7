//! Damage is found, never served silently: the durability marker, a flipped
//! byte anywhere in sled's file, records restored under covered ids, and
//! writes that resume after a full disk is freed.

mod common;

use std::path::Path;

use common::token;
use veto_core::Record;
use veto_store::{OpenError, OpenOptions, Store, StoreError};

fn open(dir: &Path) -> Result<Store, OpenError> {
    Store::open(dir, OpenOptions::default())
}

/// `batches` batches of `per` records of origin 1, each appended (and so
/// flushed) on its own.
fn fill(store: &Store, batches: u64, per: u64) -> Vec<Record> {
    let mut all = Vec::new();
    for b in 0..batches {
        let records: Vec<Record> = (1..=per)
            .map(|i| token(1, b * per + i, 1_700_000_000, 4_000_000_000))
            .collect();
        store.append(&records).unwrap();
        all.extend(records);
    }
    all
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// An older database under a newer marker (a restore of the database alone,
/// or a damaged file that sled cut short) opens, and reports how many
/// acknowledged ids are missing; as ids come back the count goes down.
#[test]
fn a_database_behind_its_marker_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    let records = {
        let store = open(dir.path()).unwrap();
        let first = fill(&store, 2, 50);
        store.flush().unwrap();
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(200));
        copy_dir(dir.path(), old.path());
        let store = open(dir.path()).unwrap();
        let mut all = first;
        all.extend((101..=130).map(|s| token(1, s, 1_700_000_000, 4_000_000_000)));
        store.append(&all[100..]).unwrap();
        assert!(store.damage().is_none());
        all
    };
    // The old database, the new marker.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let marker = std::fs::read(dir.path().join("durable-mark")).unwrap();
    std::fs::write(old.path().join("durable-mark"), marker).unwrap();
    let store = open(old.path()).unwrap();
    let damage = store.damage().expect("the loss is reported");
    assert_eq!(damage.covered_before, 130);
    assert_eq!(damage.covered_at_open, 100);
    assert_eq!(damage.missing, 30);
    // Peers send back what they hold.
    store.append(&records[100..120]).unwrap();
    assert_eq!(store.damage().unwrap().missing, 10);
    store.append(&records[120..]).unwrap();
    assert!(store.damage().is_none());
    drop(store);
    // A restored directory with its own marker is consistent: no loss.
    let again = tempfile::tempdir().unwrap();
    copy_dir(old.path(), again.path());
    std::fs::remove_file(again.path().join("durable-mark")).unwrap();
    assert!(open(again.path()).unwrap().damage().is_none());
}

/// One byte changed anywhere in sled's log: the store either refuses to open
/// with a corruption error (never a panic), or opens with every record, or
/// opens and reports exactly how many it lost. It never comes up short
/// without saying so.
#[test]
fn a_flipped_byte_is_never_a_silent_loss() {
    let pristine = tempfile::tempdir().unwrap();
    {
        let store = open(pristine.path()).unwrap();
        fill(&store, 20, 200);
        store.flush().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let len = std::fs::metadata(pristine.path().join("db")).unwrap().len();
    let (mut refused, mut intact, mut reported) = (0, 0, 0);
    for k in 1..40u64 {
        let offset = len * k / 40;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        let db = dir.path().join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        bytes[offset as usize] ^= 0x5a;
        std::fs::write(&db, &bytes).unwrap();
        match open(dir.path()) {
            Err(OpenError::Corrupt { detail, .. }) => {
                assert!(!detail.contains('\n'), "{detail}");
                refused += 1;
            }
            Err(other) => panic!("offset {offset}: not a corruption error: {other}"),
            Ok(store) => {
                let covered = store.covered().unwrap().count();
                if covered == 4_000 {
                    intact += 1;
                } else {
                    let damage = store.damage().unwrap_or_else(|| {
                        panic!("offset {offset}: {covered} of 4000 ids, and no loss reported")
                    });
                    assert_eq!(damage.missing, 4_000 - covered);
                    reported += 1;
                }
            }
        }
    }
    eprintln!("flipped bytes: {refused} refused, {intact} intact, {reported} reported losses");
}

/// Records whose data was lost under covered ids are taken back; new,
/// held or uncovered ones are not `restore`'s business.
#[test]
fn restore_fills_covered_ids_without_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    let records: Vec<Record> = (1..=10)
        .map(|s| token(1, s, 1_700_000_000, 4_000_000_000))
        .collect();
    store.append(&records).unwrap();
    let digests = store.origin_digests().unwrap();
    store.prune(&[records[2].id, records[5].id]).unwrap();
    let mut held = Vec::new();
    store
        .held_seqs(records[0].id.origin, 1..=10, |s| {
            held.push(s);
            true
        })
        .unwrap();
    assert_eq!(held, [1, 2, 4, 5, 7, 8, 9, 10]);
    let uncovered = token(1, 11, 1_700_000_000, 4_000_000_000);
    let restored = store
        .restore(&[
            records[2].clone(),
            records[3].clone(),
            uncovered.clone(),
            records[5].clone(),
        ])
        .unwrap();
    assert_eq!(restored, vec![records[2].clone(), records[5].clone()]);
    assert_eq!(
        store.get(records[2].id).unwrap().as_ref(),
        Some(&records[2])
    );
    assert_eq!(store.get(uncovered.id).unwrap(), None);
    assert_eq!(store.live_count(), 10);
    assert_eq!(store.origin_digests().unwrap(), digests);
    store.verify().unwrap();
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let store = open(dir.path()).unwrap();
    assert_eq!(store.origin_digests().unwrap(), digests);
    store.verify().unwrap();
}

/// A full disk halts writes; once space is freed, `recover` reopens the
/// database and writes resume, with every acknowledged record there. Needs
/// root to mount a small tmpfs; CI runs as root (`VETO_REQUIRE_GATEWAYS=1`
/// makes a missing mount a failure rather than a skip).
#[test]
fn writes_resume_after_a_full_disk_is_freed() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("VETO_REQUIRE_GATEWAYS").is_none(),
            "cannot mount a tmpfs (needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status();
        }
    }
    let _unmount = Unmount(mount.path());
    let data = mount.path().join("data");
    let filler = mount.path().join("filler");
    let store = open(&data).unwrap();
    std::fs::write(&filler, vec![0u8; 12 << 20]).unwrap();
    let mut acked = Vec::new();
    let mut seq = 0;
    let failure = loop {
        let batch: Vec<Record> = (0..200)
            .map(|_| {
                seq += 1;
                token(1, seq, 1_700_000_000, 4_000_000_000)
            })
            .collect();
        match store.append(&batch) {
            Ok(_) => acked.extend(batch),
            Err(e) => break e,
        }
        assert!(seq < 1_000_000, "the disk never filled");
    };
    assert!(!matches!(failure, StoreError::Halted(_)), "{failure}");
    assert!(store.halted().is_some());
    let more = token(1, seq + 1, 1_700_000_000, 4_000_000_000);
    assert!(matches!(
        store.append(std::slice::from_ref(&more)),
        Err(StoreError::Halted(_))
    ));
    // Still full: recovery says so and changes nothing.
    assert!(store.recover().is_err());
    assert!(store.halted().is_some());
    std::fs::remove_file(&filler).unwrap();
    assert!(store.recover().unwrap());
    assert!(store.halted().is_none());
    for r in &acked {
        assert_eq!(store.get(r.id).unwrap().as_ref(), Some(r), "{}", r.id);
    }
    let next = token(1, seq + 10, 1_700_000_000, 4_000_000_000);
    assert_eq!(
        store.append(std::slice::from_ref(&next)).unwrap(),
        vec![next]
    );
    store.verify().unwrap();
}
