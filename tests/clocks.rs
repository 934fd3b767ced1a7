//! Nodes whose clocks are wrong, under libfaketime (Debian `faketime`): three
//! days ahead, and an hour behind. A wrong clock never loses a record: the
//! node notices it disagrees with its peers, keeps everything it receives,
//! stops garbage collection, and refuses the bulk cutoffs it would set wrong.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::mesh::{enforced, wait_connected, wait_enforced_everywhere, Mesh};
use support::{eventually, now, require_gateway, Veto};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The environment that runs a process with its clock `offset` away
/// (libfaketime's syntax: `+3d`, `-1h`), or `None` (and a skip message) when
/// libfaketime is missing.
fn faked(offset: &str) -> Option<Vec<(String, String)>> {
    let lib = require_gateway(
        "libfaketime (Debian package faketime)",
        Path::new(LIBFAKETIME).is_file().then_some(LIBFAKETIME),
    )?;
    Some(vec![
        ("LD_PRELOAD".into(), lib.into()),
        ("FAKETIME".into(), offset.into()),
        // Only the wall clock is wrong; the monotonic clock runs true, as on
        // a machine whose clock was set wrong.
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ])
}

fn clock_state(node: &Veto) -> String {
    node.status()["clock"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A node three days ahead receives 23 revocations that expire within the
/// hour by the true clock (so, by its own clock, long ago): it keeps all of
/// them, does not collect them, and refuses a bulk cutoff. Once its clock is
/// right again it still holds all 23, its digest is its peers', lag 0.
#[test]
fn a_node_days_ahead_keeps_every_revocation_it_receives() {
    let Some(ahead) = faked("+3d") else { return };
    let mesh = Mesh::new(&["a", "b", "x"]);
    let (a, b) = (mesh.start(0), mesh.start(1));
    let gc = ["--gc-interval", "1", "--gc-grace", "60"];
    let x = mesh.start_on(2, &mesh.dir(2), &gc, ahead);
    wait_connected(&[&a, &b, &x], 2);
    eventually(Duration::from_secs(20), "x sees its clock is off", || {
        clock_state(&x) == "skewed"
    });
    // a may have measured x before b: it is confirmed once it has both.
    eventually(Duration::from_secs(20), "a's clock is confirmed", || {
        clock_state(&a) == "ok"
    });
    let soon = now() + 3600;
    let records: Vec<Value> = (0..23)
        .map(|k| {
            a.revoke(json!({"scope": "token", "iss": "https://idp.example",
                "jti": format!("short-{k}"), "expires_at": soon}))
        })
        .collect();
    wait_enforced_everywhere(&[&a, &b, &x], &records);

    // Garbage collection waits while the clock disagrees: after several
    // passes, nothing was taken.
    eventually(Duration::from_secs(20), "collection paused", || {
        x.metric("veto_gc_paused_total") >= 3.0
    });
    assert!(records.iter().all(|r| enforced(&x, r)));
    assert_eq!(x.status()["revocations"], 23);

    // A bulk cutoff from this clock would revoke three days of future tokens.
    let r = x.post_json(
        "/v1/revocations",
        &json!({"scope": "subject", "sub": "bob"}),
    );
    assert_eq!(r.status(), 503);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "clock_skew", "{body}");
    // Token revocations still work, and reach everyone.
    let y = x.revoke(json!({"scope": "token", "iss": "https://idp.example", "jti": "from-x"}));

    // The clock is fixed: everything is still there.
    let x = x.restart_env(Some(Vec::new()));
    wait_connected(&[&x], 2);
    eventually(Duration::from_secs(20), "x agrees again", || {
        clock_state(&x) == "ok"
    });
    let mut all = records.clone();
    all.push(y);
    wait_enforced_everywhere(&[&a, &b, &x], &all);
    // Lag is measured against each peer's last frontier, which may predate
    // the last repair by up to an anti-entropy round.
    eventually(Duration::from_secs(20), "x's peers lack nothing", || {
        x.status()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"] == 0)
    });
}

/// A node an hour behind: a subject cutoff taken from its clock would leave
/// every token of the last hour valid, so it refuses; the same revocation at
/// a node with a right clock is enforced at the slow node too, for a token
/// issued just now.
#[test]
fn a_node_an_hour_behind_sets_no_cutoff_and_enforces_the_others() {
    let Some(behind) = faked("-1h") else { return };
    let mesh = Mesh::new(&["a", "b", "y"]);
    let (a, b) = (mesh.start(0), mesh.start(1));
    let y = mesh.start_on(2, &mesh.dir(2), &[], behind);
    wait_connected(&[&a, &b, &y], 2);
    eventually(Duration::from_secs(20), "y sees its clock is off", || {
        clock_state(&y) == "skewed"
    });
    let r = y.post_json(
        "/v1/revocations",
        &json!({"scope": "subject", "sub": "bob"}),
    );
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().unwrap()["error"], "clock_skew");
    assert_eq!(y.metric("veto_clock_skewed"), 1.0);

    let issued = now();
    let cutoff = a.revoke(json!({"scope": "subject", "sub": "bob"}));
    assert!(cutoff["before"].as_u64().unwrap() > issued, "{cutoff}");
    let iat = issued.to_string();
    for node in [&a, &b, &y] {
        eventually(Duration::from_secs(20), "bob's fresh token revoked", || {
            node.revoked(&[("sub", "bob"), ("iat", &iat)])
        });
    }
    let token = y.revoke(json!({"scope": "token", "iss": "https://idp.example", "jti": "slow"}));
    wait_enforced_everywhere(&[&a, &b, &y], &[token]);
}

/// A node stamps a revocation while its clock runs an hour ahead, and is
/// restarted with its clock set right: its next stamp is still above the
/// earlier one (the highest local stamp is kept on disk), so the audit trail's
/// order never goes back. Yet a subject cutoff set then follows the clock as
/// it is now: it does not revoke the subject's tokens of the next hour.
#[test]
fn a_restart_after_the_clock_stepped_back_never_stamps_below_an_earlier_stamp() {
    let Some(ahead) = faked("+1h") else { return };
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = vec!["--gossip-listen".into(), "127.0.0.1:0".into()];
    let mut node = Veto::start_env(dir.path(), &args, ahead);
    let first = node.revoke(json!({"scope": "token", "jti": "while-ahead"}));
    node.stop();
    let node = node.restart_env(Some(Vec::new()));
    let second = node.revoke(json!({"scope": "token", "jti": "after-the-step"}));
    // The stamp is a decimal string (it does not fit a JSON double).
    let stamp = |r: &Value| r["hlc"].as_str().unwrap().parse::<u64>().unwrap();
    let (a, b) = (stamp(&first), stamp(&second));
    assert!(b > a, "stamp went back: {b} after {a}");
    let cutoff = node.revoke(json!({"scope": "subject", "sub": "carol"}));
    let before = cutoff["before"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(before >= now, "{cutoff}");
    assert!(
        before <= now + 10,
        "the cutoff follows the hybrid clock an hour ahead: {cutoff}"
    );
    let ahead = node.post_json(
        "/v1/revocations",
        &json!({"scope": "subject", "sub": "carol", "before": now + 1800}),
    );
    assert_eq!(ahead.status(), 400, "{}", ahead.text().unwrap());
}
