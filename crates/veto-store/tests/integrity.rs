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
/// opens and reports how many it lost: by its durability marker (fewer ids
/// covered), or by records that disagree with its digest (fewer records than
/// it counts: the node checks this at load and repairs). It never comes up
/// short without one of these saying so.
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
                let mut stored = 0u64;
                let scanned = store.for_each_target(|_, _| stored += 1);
                let counted = store.digest().unwrap().count();
                if covered == 4_000 && stored == 4_000 && scanned.is_ok() {
                    intact += 1;
                } else if covered < 4_000 {
                    let damage = store.damage().unwrap_or_else(|| {
                        panic!("offset {offset}: {covered} of 4000 ids, and no loss reported")
                    });
                    assert_eq!(damage.missing, 4_000 - covered);
                    reported += 1;
                } else {
                    // Covered, but not all there: the scan fails, or finds
                    // fewer records than the digest counts.
                    assert!(
                        scanned.is_err() || stored != counted,
                        "offset {offset}: {stored} of 4000 records, digest counts {counted}"
                    );
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

/// A small tmpfs mounted for one test, unmounted when dropped. `None` (and a
/// skip message) when mounting is not allowed here; under
/// `VETO_REQUIRE_GATEWAYS=1` (CI, which runs as root) that fails instead.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs(dir));
        }
        assert!(
            std::env::var_os("VETO_REQUIRE_GATEWAYS").is_none(),
            "cannot mount a tmpfs (needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        None
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Appends batches of 200 until one fails; returns the acknowledged records
/// and the error.
fn fill_until_refused(store: &Store) -> (Vec<Record>, StoreError) {
    let mut acked = Vec::new();
    let mut seq = 0;
    loop {
        let batch: Vec<Record> = (0..200)
            .map(|_| {
                seq += 1;
                token(1, seq, 1_700_000_000, 4_000_000_000)
            })
            .collect();
        match store.append(&batch) {
            Ok(_) => acked.extend(batch),
            Err(e) => return (acked, e),
        }
        assert!(seq < 1_000_000, "the disk never filled");
    }
}

/// The disk fills up: writes halt before sled meets a full disk (a little
/// room is kept free), every acknowledged record stays, and once space is
/// freed `recover` lifts the halt and writes resume.
#[test]
fn writes_halt_before_the_disk_is_full_and_resume_when_it_is_freed() {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let data = fs.path().join("data");
    let opts = OpenOptions {
        min_free_bytes: 2 << 20,
        ..OpenOptions::default()
    };
    let store = Store::open(&data, opts).unwrap();
    std::fs::write(fs.path().join("filler"), vec![0u8; 16 << 20]).unwrap();
    let (acked, failure) = fill_until_refused(&store);
    assert!(!acked.is_empty());
    assert!(matches!(failure, StoreError::Halted(_)), "{failure}");
    assert!(store.halted().unwrap().contains("nearly full"));
    assert!(store.recover().is_err(), "still full");
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    assert!(store.recover().unwrap());
    assert!(store.halted().is_none());
    for r in &acked {
        assert_eq!(store.get(r.id).unwrap().as_ref(), Some(r), "{}", r.id);
    }
    let next = token(2, 1, 1_700_000_000, 4_000_000_000);
    assert_eq!(
        store.append(std::slice::from_ref(&next)).unwrap(),
        vec![next]
    );
    store.verify().unwrap();
}

const FULL_CHILD_ENV: &str = "VETO_STORE_FULL_DISK_CHILD";

/// Runs in a child process: fills the disk with the free-space check off, so
/// that sled itself meets the full disk, frees it, and tries to recover.
/// Prints how many records were acknowledged and how recovery went.
fn full_disk_child(dir: &Path) {
    let data = dir.join("data");
    let opts = OpenOptions {
        min_free_bytes: 0,
        ..OpenOptions::default()
    };
    let store = Store::open(&data, opts).unwrap();
    std::fs::write(dir.join("filler"), vec![0u8; 16 << 20]).unwrap();
    let (acked, _) = fill_until_refused(&store);
    assert!(store.halted().is_some(), "a failed write halts the store");
    std::fs::remove_file(dir.join("filler")).unwrap();
    let outcome = match store.recover() {
        Ok(true) => {
            let next = token(2, 1, 1_700_000_000, 4_000_000_000);
            store.append(&[next]).unwrap();
            "recovered"
        }
        Ok(false) => "not-halted",
        // sled can hang closing a database that failed: then only a new
        // process recovers, which the parent is.
        Err(StoreError::Wedged(_)) => "wedged",
        Err(e) => panic!("recovery failed: {e}"),
    };
    println!("acked {} {outcome}", acked.len());
    // Exit at once, without dropping a store that may hang.
    std::process::exit(0);
}

/// sled itself meets the full disk (the free-space check is off): the store
/// halts, and after the disk is freed either recovers in place, or says that
/// only a new process can; either way a new process finds every
/// acknowledged record.
#[test]
fn when_sled_meets_a_full_disk_nothing_acknowledged_is_lost() {
    if let Some(dir) = std::env::var_os(FULL_CHILD_ENV) {
        full_disk_child(Path::new(&dir));
    }
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "when_sled_meets_a_full_disk_nothing_acknowledged_is_lost",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FULL_CHILD_ENV, fs.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness prints the test's name on the same line.
    let line = stdout
        .lines()
        .find_map(|l| l.find("acked ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("{stdout}"));
    let mut words = line.split_whitespace().skip(1);
    let acked: u64 = words.next().unwrap().parse().unwrap();
    let outcome = words.next().unwrap();
    assert!(matches!(outcome, "recovered" | "wedged"), "{line}");
    assert!(acked > 0);
    let store = Store::open(&fs.path().join("data"), OpenOptions::default()).unwrap();
    for seq in 1..=acked {
        let id = common::id(1, seq);
        assert!(store.get(id).unwrap().is_some(), "{id} lost ({outcome})");
    }
    assert!(store.damage().is_none());
    store.verify().unwrap();
}
