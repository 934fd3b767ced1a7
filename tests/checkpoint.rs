//! Restarting from the index checkpoint: a real node writes it in the
//! background, restarts from it after `kill -9` with what was stored and
//! pruned since, and never uses one that does not match its store (damaged,
//! or left over after a data dir was restored from a backup).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::{copy_dir, eventually, now, Veto};

const ISS: &str = "https://idp.example";

fn batch(veto: &Veto, prefix: &str, n: usize, expires_at: Option<u64>) {
    let body: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = json!({"scope": "token", "iss": ISS, "jti": format!("{prefix}{i}")});
            if let Some(at) = expires_at {
                r["expires_at"] = json!(at);
            }
            r
        })
        .collect();
    let r = veto.post_json("/v1/revocations/batch", &json!(body));
    assert_eq!(r.status(), 201);
}

fn all_revoked(veto: &Veto, prefix: &str, n: usize) -> bool {
    (0..n).all(|i| veto.revoked(&[("iss", ISS), ("jti", &format!("{prefix}{i}"))]))
}

fn none_revoked(veto: &Veto, prefix: &str, n: usize) -> bool {
    (0..n).all(|i| !veto.revoked(&[("iss", ISS), ("jti", &format!("{prefix}{i}"))]))
}

/// Waits until the node has written a checkpoint of at least `records`.
fn wait_checkpoint(veto: &Veto, records: usize) {
    eventually(Duration::from_secs(30), "an index checkpoint", || {
        veto.metric("veto_checkpoint_records") >= records as f64
    });
}

/// How many starts of this process read the checkpoint with `result`.
fn loads(veto: &Veto, result: &str) -> f64 {
    veto.metric(&format!(
        "veto_checkpoint_loads_total{{result=\"{result}\"}}"
    ))
}

/// Sets `--checkpoint-interval` for the next restart.
fn checkpoint_every(veto: &mut Veto, secs: u64) {
    let at = veto
        .args
        .iter()
        .position(|a| a == "--checkpoint-interval")
        .expect("started with --checkpoint-interval");
    veto.args[at + 1] = secs.to_string();
}

fn start(dir: &Path) -> Veto {
    Veto::start(
        dir,
        &[
            "--checkpoint-interval",
            "1",
            "--gc-interval",
            "1",
            "--gc-grace",
            "0",
        ],
    )
}

#[test]
fn a_restart_from_the_checkpoint_holds_what_was_stored_and_pruned_since() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = start(dir.path());
    batch(&veto, "a", 3_000, None);
    veto.revoke(json!({"scope": "subject", "iss": ISS, "sub": "alice", "before": now()}));
    veto.revoke(json!({"scope": "session", "sid": "s-1"}));
    wait_checkpoint(&veto, 3_002);
    assert!(dir.path().join("index.checkpoint").exists());

    // From here on no new checkpoint: the next restarts must add what is
    // stored and remove what is pruned after this one.
    veto.kill9();
    checkpoint_every(&mut veto, 3_600);
    let mut veto = veto.restart();
    assert_eq!(veto.metric("veto_checkpoint_loads_total"), 1.0);
    batch(&veto, "b", 500, None);
    batch(&veto, "short", 20, Some(now() + 2));
    eventually(
        Duration::from_secs(30),
        "the short-lived records pruned",
        || veto.get_json("/v1/status")["revocations"] == 3_502,
    );
    veto.kill9();
    let veto = veto.restart();

    assert_eq!(loads(&veto, "used"), 1.0);
    assert!(
        all_revoked(&veto, "a", 3_000),
        "a record of the checkpoint lost"
    );
    assert!(
        all_revoked(&veto, "b", 500),
        "a record stored after it lost"
    );
    assert!(
        none_revoked(&veto, "short", 20),
        "a pruned record still enforced"
    );
    let issued = (now() - 3_600).to_string();
    assert!(veto.revoked(&[("iss", ISS), ("sub", "alice"), ("iat", &issued)]));
    assert!(veto.revoked(&[("sid", "s-1")]));
    assert_eq!(veto.get_json("/v1/status")["revocations"], 3_502);
}

/// `kill -9` while the next checkpoint is being written aside: the restart
/// still reads the last one, with the records stored and pruned since.
#[test]
fn a_kill_during_a_checkpoint_write_restarts_from_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = start(dir.path());
    for part in 0..2 {
        batch(&veto, &format!("a{part}-"), 10_000, None);
    }
    wait_checkpoint(&veto, 20_000);
    let tmp = dir.path().join("index.checkpoint.tmp");
    let mut rounds = Vec::new();
    let mut killed_mid_write = false;
    while !killed_mid_write && rounds.len() < 20 {
        let prefix = format!("r{}-", rounds.len());
        batch(&veto, &prefix, 10_000, None);
        rounds.push(prefix);
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !tmp.exists() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        veto.kill9();
        // The file written aside is still there: the kill beat its rename.
        killed_mid_write = tmp.exists();
        veto = veto.restart();
    }
    assert!(killed_mid_write, "no kill landed during a checkpoint write");

    assert_eq!(loads(&veto, "used"), 1.0, "the last checkpoint was lost");
    let total = 20_000 + 10_000 * rounds.len();
    assert_eq!(veto.get_json("/v1/status")["revocations"], total);
    let prefixes = ["a0-", "a1-"]
        .into_iter()
        .chain(rounds.iter().map(String::as_str));
    for prefix in prefixes {
        for i in (0..10_000).step_by(997) {
            let jti = format!("{prefix}{i}");
            assert!(veto.revoked(&[("iss", ISS), ("jti", &jti)]), "{jti} lost");
        }
    }
}

/// After the first checkpoint, the next ones are written from the one
/// before (its keys, less the prunes, plus what was stored since); a restart
/// from such a one holds exactly the store's records.
#[test]
fn a_restart_from_an_updated_checkpoint_holds_exactly_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = start(dir.path());
    batch(&veto, "a", 2_000, None);
    wait_checkpoint(&veto, 2_000);
    batch(&veto, "b", 1_000, None);
    batch(&veto, "short", 20, Some(now() + 2));
    eventually(
        Duration::from_secs(60),
        "an updated checkpoint of the store after the prune",
        || {
            veto.get_json("/v1/status")["revocations"] == 3_000
                && veto.metric("veto_checkpoint_records") == 3_000.0
                && veto.metric("veto_checkpoint_updates_total") >= 1.0
        },
    );
    veto.kill9();
    checkpoint_every(&mut veto, 3_600);
    let veto = veto.restart();
    assert_eq!(loads(&veto, "used"), 1.0);
    assert!(all_revoked(&veto, "a", 2_000));
    assert!(all_revoked(&veto, "b", 1_000));
    assert!(none_revoked(&veto, "short", 20));
    assert_eq!(veto.get_json("/v1/status")["revocations"], 3_000);
}

#[test]
fn a_damaged_checkpoint_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = start(dir.path());
    batch(&veto, "a", 800, None);
    wait_checkpoint(&veto, 800);
    veto.kill9();
    let path = dir.path().join("index.checkpoint");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let veto = veto.restart();
    assert_eq!(veto.metric("veto_checkpoint_loads_total"), 1.0);
    assert_eq!(loads(&veto, "refused"), 1.0);
    assert!(all_revoked(&veto, "a", 800));
    assert_eq!(veto.get_json("/v1/status")["revocations"], 800);
}

/// The data dir is restored from a backup, and a newer checkpoint is left in
/// it: the checkpoint claims records the store does not hold, so it is
/// refused and the index is exactly the store's records.
#[test]
fn a_checkpoint_newer_than_a_restored_store_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let mut veto = start(dir.path());
    batch(&veto, "old", 300, None);
    wait_checkpoint(&veto, 300);
    veto.stop();
    copy_dir(dir.path(), backup.path());

    let mut veto = veto.restart();
    batch(&veto, "new", 300, None);
    wait_checkpoint(&veto, 600);
    veto.kill9();
    let newer = std::fs::read(dir.path().join("index.checkpoint")).unwrap();
    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(backup.path(), dir.path());
    std::fs::write(dir.path().join("index.checkpoint"), newer).unwrap();

    let veto = veto.restart();
    assert_eq!(loads(&veto, "refused"), 1.0);
    assert!(all_revoked(&veto, "old", 300));
    assert!(
        none_revoked(&veto, "new", 300),
        "the index holds records the store lost"
    );
    assert_eq!(veto.get_json("/v1/status")["revocations"], 300);
}

/// What hits report (reason, time, record id) is the same after a restart,
/// whether a hit reads it from the store (just after the restart) or from
/// memory (once the node has read every record's details back).
#[test]
fn a_hit_reports_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = start(dir.path());
    let reasons = ["leaked", "", "leaked", "employee left", "session hijacked"];
    let mut expected = Vec::new();
    for (i, reason) in reasons.iter().enumerate() {
        let record = veto.revoke(
            json!({"scope": "token", "iss": ISS, "jti": format!("r{i}"), "reason": reason}),
        );
        expected.push(json!({
            "revoked": true,
            "scope": "token",
            "id": record["id"],
            "reason": reason,
            "revoked_at": record["revoked_at"],
        }));
        // A second apart, so a time taken from the wrong record shows.
        std::thread::sleep(Duration::from_millis(1_100));
    }
    let answers = |veto: &Veto| -> Vec<Value> {
        (0..reasons.len())
            .map(|i| {
                let mut answer =
                    veto.get_json(&format!("/v1/check?jti=r{i}&iss={}", urlencode(ISS)));
                // No reason given may be answered as an empty one or none.
                if answer.get("reason").is_none() {
                    answer["reason"] = json!("");
                }
                answer
            })
            .collect()
    };
    let times: Vec<u64> = expected
        .iter()
        .map(|a| a["revoked_at"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert_eq!(answers(&veto), expected, "a hit on a fresh node");
    assert_eq!(
        veto.metric("veto_hit_details_records"),
        reasons.len() as f64
    );
    let before = expected;

    veto.kill9();
    let veto = veto.restart();
    assert_eq!(answers(&veto), before, "a hit just after the restart");
    eventually(
        Duration::from_secs(30),
        "every record's details in memory",
        || veto.metric("veto_hit_details_records") == reasons.len() as f64,
    );
    assert_eq!(answers(&veto), before, "a hit answered from memory");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Memory keeps at most 65,536 distinct reasons; a hit on a record with a
/// reason past them still reports it, read from the store.
#[test]
fn a_hit_whose_reason_is_not_kept_in_memory_reads_it_from_the_store() {
    const KEPT: usize = 65_536;
    let dir = tempfile::tempdir().unwrap();
    let veto = start(dir.path());
    let total = KEPT + 10;
    for start in (0..total).step_by(10_000) {
        let body: Vec<Value> = (start..total.min(start + 10_000))
            .map(|i| json!({"scope": "token", "jti": format!("m{i}"), "reason": format!("case {i}")}))
            .collect();
        assert_eq!(
            veto.post_json("/v1/revocations/batch", &json!(body))
                .status(),
            201
        );
    }
    assert_eq!(veto.metric("veto_hit_details_records"), KEPT as f64);
    for i in [0, KEPT - 1, KEPT, total - 1] {
        let answer = veto.get_json(&format!("/v1/check?jti=m{i}"));
        assert_eq!(answer["revoked"], true, "{answer}");
        assert_eq!(answer["reason"], format!("case {i}"), "{answer}");
        assert!(
            answer["revoked_at"].as_u64().unwrap() + 600 > now(),
            "{answer}"
        );
    }
}
