//! A damaged data directory and a full disk, with real processes: damage is
//! refused in one line or reported and repaired from peers, never served
//! silently; a full disk halts writes (lookups go on) until it is freed.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::mesh::{enforced, wait_connected, Mesh};
use support::{copy_dir, eventually, free_port, require_gateway, veto_bin, Veto, ADMIN_TOKEN};

/// `batches` batches of `per` token revocations at `node`; returns them.
fn revoke_batches(node: &Veto, prefix: &str, batches: usize, per: usize) -> Vec<Value> {
    let mut all = Vec::new();
    for b in 0..batches {
        let body: Vec<Value> = (0..per)
            .map(|k| json!({"scope": "token", "iss": "https://idp.example", "jti": format!("{prefix}-{b}-{k}")}))
            .collect();
        let r = node.post_json("/v1/revocations/batch", &Value::Array(body));
        assert_eq!(r.status(), 201);
        all.extend(
            r.json::<Value>().unwrap()["records"]
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    all
}

/// How a start on a damaged copy went.
enum Outcome {
    /// Exited with this status and stderr.
    Refused(i32, String),
    /// Serving, with this `/v1/status`.
    Serving(Value),
}

/// Starts a standalone node on `dir` and waits until it serves or exits.
fn try_start(dir: &Path) -> Outcome {
    let port = free_port();
    let mut child = Command::new(veto_bin())
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::blocking::Client::new();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return Outcome::Refused(status.code().unwrap_or(-1), err);
        }
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ready {
            let status: Value = http
                .get(format!("http://127.0.0.1:{port}/v1/status"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Serving(status);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "neither served nor exited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// b holds 10,000 revocations made at a. Bytes of b's sled file are flipped,
/// one offset per copy. Every start either exits 1 with one line naming the
/// corruption (no panic text), or serves every record, or serves and reports
/// how many are missing; a damaged node that starts gets them back from a.
#[test]
fn a_damaged_database_is_refused_in_one_line_or_reported_and_repaired() {
    let mesh = Mesh::new(&["a", "b"]);
    let a = mesh.start(0);
    let mut b = mesh.start(1);
    wait_connected(&[&a, &b], 1);
    let records = revoke_batches(&a, "bulk", 20, 500);
    eventually(Duration::from_secs(60), "b holds everything", || {
        b.status()["revocations"] == 10_000
    });
    b.stop();
    let pristine = mesh.root.path().join("pristine");
    copy_dir(&mesh.dir(1), &pristine);
    let len = std::fs::metadata(pristine.join("db")).unwrap().len();
    let (mut refused, mut intact, mut lossy) = (0, 0, None);
    for k in 1..24u64 {
        let dir = mesh.root.path().join(format!("flip-{k}"));
        copy_dir(&pristine, &dir);
        let db = dir.join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let at = (len * k / 24) as usize;
        bytes[at] ^= 0x5a;
        std::fs::write(&db, &bytes).unwrap();
        match try_start(&dir) {
            Outcome::Refused(code, err) => {
                assert_eq!(code, 1, "offset {at}: {err}");
                let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("veto:")).collect();
                assert_eq!(lines.len(), 1, "offset {at}: {err}");
                assert!(lines[0].contains("corrupt"), "offset {at}: {err}");
                assert!(!err.contains("panicked"), "offset {at}: {err}");
                refused += 1;
            }
            Outcome::Serving(status) if status["revocations"] == 10_000 => intact += 1,
            Outcome::Serving(status) => {
                let missing = status["storage"]["missing_records"]
                    .as_u64()
                    .unwrap_or_else(|| {
                        panic!(
                            "offset {at}: serving {} of 10000 without reporting a loss",
                            status["revocations"]
                        )
                    });
                assert!(missing > 0, "{status}");
                lossy.get_or_insert(dir.clone());
            }
        }
    }
    eprintln!("flips: {refused} refused, {intact} intact, lossy: {lossy:?}");
    // A node that came up short gets everything back from its peer.
    if let Some(dir) = lossy {
        let b = mesh.start_on(1, &dir, &[], Vec::new());
        let mut last = Value::Null;
        let started = Instant::now();
        while !(last["revocations"] == 10_000 && last["storage"]["missing_records"].is_null()) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "b not repaired: {last}"
            );
            std::thread::sleep(Duration::from_millis(100));
            last = b.status();
        }
        assert!(records.iter().all(|r| enforced(&b, r)));
        assert_eq!(b.digest(), a.digest());
    }
}

/// a's data dir is on a small tmpfs that fills up: revocations at a get 503
/// `writes_halted`, `/readyz` says so, lookups go on, and what b revokes
/// meanwhile waits. The space is freed: a resumes by itself, and every
/// acknowledged revocation is enforced on both nodes. With the default free
/// space check, writes stop before sled meets the full disk.
#[test]
fn a_full_disk_halts_writes_until_it_is_freed() {
    full_disk("2");
}

/// The same with the free space check off, so that sled itself meets the
/// full disk (after which it refuses everything until reopened, or restarted
/// when it cannot be closed): nothing acknowledged is lost either way.
#[test]
fn a_write_failing_in_sled_halts_writes_until_the_disk_is_freed() {
    full_disk("0");
}

/// Whether `GET path` answers `status` (a refused connection is not).
fn answers(node: &Veto, path: &str, status: u16) -> bool {
    node.http
        .get(format!("{}{path}", node.url))
        .send()
        .is_ok_and(|r| r.status() == status)
}

fn full_disk(min_free_mb: &str) {
    let mount = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    let Some(()) = require_gateway("a tmpfs mount (needs root)", mounted.then_some(())) else {
        return;
    };
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount.path());
    let mesh = Mesh::new(&["a", "b"]);
    let a_dir = mount.path().join("a");
    let env = vec![("VETO_MIN_FREE_MB".to_owned(), min_free_mb.to_owned())];
    let a = mesh.start_on(0, &a_dir, &[], env);
    let b = mesh.start(1);
    wait_connected(&[&a, &b], 1);
    std::fs::write(mount.path().join("filler"), vec![0u8; 18 << 20]).unwrap();

    let mut acked = Vec::new();
    let mut batch = 0;
    let refusal = loop {
        let body: Vec<Value> = (0..500)
            .map(|k| json!({"scope": "token", "iss": "https://idp.example", "jti": format!("fill-{batch}-{k}")}))
            .collect();
        batch += 1;
        let r = a.post_json("/v1/revocations/batch", &Value::Array(body));
        if r.status() == 201 {
            acked.extend(
                r.json::<Value>().unwrap()["records"]
                    .as_array()
                    .unwrap()
                    .clone(),
            );
            assert!(batch < 2_000, "the disk never filled");
            continue;
        }
        break (r.status(), r.json::<Value>().unwrap());
    };
    assert!(!acked.is_empty());
    assert_eq!(refusal.0, 503, "{}", refusal.1);
    let r = a.post_json(
        "/v1/revocations",
        &json!({"scope": "token", "iss": "https://idp.example", "jti": "while-full"}),
    );
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().unwrap()["error"], "writes_halted");
    let ready = a.get("/readyz");
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().unwrap()["error"], "writes_halted");
    assert_eq!(a.status()["storage"]["writes"], "halted");
    assert!(a
        .get("/metrics")
        .text()
        .unwrap()
        .contains("veto_store_writes_halted 1"));
    // Lookups go on.
    assert!(acked.iter().take(50).all(|r| enforced(&a, r)));
    let meanwhile: Vec<Value> = (0..5)
        .map(|k| b.revoke(json!({"scope": "token", "iss": "https://idp.example", "jti": format!("meanwhile-{k}")})))
        .collect();

    std::fs::remove_file(mount.path().join("filler")).unwrap();
    eventually(Duration::from_secs(60), "a takes writes again", || {
        answers(&a, "/readyz", 200)
    });
    let after = a.revoke(json!({"scope": "token", "iss": "https://idp.example", "jti": "after"}));
    // Every 20th of the records acknowledged before the disk filled, and all
    // the later ones, are checked one by one; equal digests and counts vouch
    // for the rest.
    let mut checked: Vec<Value> = acked.iter().step_by(20).cloned().collect();
    checked.extend(meanwhile);
    checked.push(after);
    let total = acked.len() + 6;
    for node in [&a, &b] {
        eventually(
            Duration::from_secs(60),
            "every acknowledged revocation enforced",
            || checked.iter().all(|r| enforced(node, r)),
        );
        eventually(Duration::from_secs(30), "every record held", || {
            node.status()["revocations"] == total
        });
    }
    eventually(Duration::from_secs(30), "digests agree", || {
        a.digest() == b.digest()
    });
}

/// A chunk of b's records vanishes from its database while the metadata (its
/// frontier) survives: b still covers every id, so its lag is 0 and no peer
/// would send them again. b notices that its records and digests disagree,
/// and the holdings exchange with a brings every record back.
#[test]
fn records_lost_under_an_intact_frontier_come_back() {
    let mesh = Mesh::new(&["a", "b"]);
    let a = mesh.start(0);
    let mut b = mesh.start(1);
    wait_connected(&[&a, &b], 1);
    let records = revoke_batches(&a, "chunked", 1, 300);
    eventually(Duration::from_secs(30), "b holds everything", || {
        b.digest() == a.digest()
    });
    b.stop();
    {
        let db = loop {
            match sled::open(mesh.dir(1)) {
                Ok(db) => break db,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let tree = db.open_tree("records").unwrap();
        let (key, _) = tree.iter().nth(2).unwrap().unwrap();
        tree.remove(key).unwrap();
        db.flush().unwrap();
    }
    // (On loopback the repair takes well under a second: the records may be
    // back before the first status request. The restored count proves it.)
    let b = b.restart();
    eventually(Duration::from_secs(60), "b repaired", || {
        b.digest() == a.digest()
    });
    assert!(records.iter().all(|r| enforced(&b, r)));
    let restored: f64 = b
        .get("/metrics")
        .text()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("veto_gossip_records_received_total") && l.contains("restored"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(restored, 64.0, "one chunk holds 64 records");
}
