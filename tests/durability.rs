//! An acknowledged revocation survives kill -9, a clean restart and GC.

mod support;

use serde_json::json;
use support::{now, Veto};

#[test]
fn kill_9_right_after_the_last_201_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    let n = 300;
    for i in 0..n {
        veto.revoke(json!({"scope": "token", "iss": "https://idp", "jti": format!("t{i}")}));
    }
    veto.kill9();
    let veto = veto.restart();
    for i in 0..n {
        assert!(
            veto.revoked(&[("iss", "https://idp"), ("jti", &format!("t{i}"))]),
            "t{i} lost after kill -9"
        );
    }
    assert_eq!(veto.get_json("/v1/status")["revocations"], n);
}

#[test]
fn a_batch_is_durable_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    let batch: Vec<_> = (0..2_000)
        .map(|i| json!({"scope": "token", "jti": format!("b{i}")}))
        .collect();
    let r = veto.post_json("/v1/revocations/batch", &json!(batch));
    assert_eq!(r.status(), 201);
    veto.kill9();
    let veto = veto.restart();
    assert!(veto.revoked(&[("jti", "b0")]));
    assert!(veto.revoked(&[("jti", "b1999")]));
    assert_eq!(veto.get_json("/v1/status")["revocations"], 2_000);
}

/// A restart keeps every record and the node's name; its records from then
/// on carry a new origin id, numbered from 1, so that no copy of the data
/// dir can ever issue one of its ids again (see docs/durability.md).
#[test]
fn a_clean_restart_keeps_everything_under_a_new_writer_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    let first = veto.revoke(json!({"scope": "session", "sid": "s1"}));
    let before = veto.get_json("/v1/status");
    assert_eq!(first["origin"], before["node"]["id"]);
    veto.stop();
    let veto = veto.restart();
    let after = veto.get_json("/v1/status");
    assert_eq!(before["node"]["name"], after["node"]["name"]);
    assert_ne!(before["node"]["id"], after["node"]["id"]);
    assert_eq!(before["digest"], after["digest"]);
    assert!(veto.revoked(&[("sid", "s1")]));
    let rec = veto.revoke(json!({"scope": "session", "sid": "s2"}));
    assert_eq!(rec["origin"], after["node"]["id"]);
    assert_eq!(rec["seq"], 1);
    assert_ne!(rec["id"], first["id"]);
}

#[test]
fn garbage_collection_prunes_expired_records_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &["--gc-interval", "1", "--gc-grace", "0"]);
    let soon = now() + 2;
    veto.revoke(json!({"scope": "token", "jti": "short", "expires_at": soon}));
    veto.revoke(json!({"scope": "token", "jti": "long"}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while veto.get_json("/v1/status")["revocations"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired record was never pruned"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(!veto.revoked(&[("jti", "short")]));
    assert!(veto.revoked(&[("jti", "long")]));
    let metrics = veto.get("/metrics").text().unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("veto_gc_removed_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // After a restart the pruned record stays gone and the live one stays.
    let veto = veto.restart();
    assert!(!veto.revoked(&[("jti", "short")]));
    assert!(veto.revoked(&[("jti", "long")]));
}

/// While a restarted node opens its store and loads its index, its HTTP port
/// already answers: lookups get 503 `unavailable` (never a possibly wrong "not
/// revoked", never a refused connection), `/healthz` 200, `/readyz` 503.
#[test]
fn lookups_answer_503_while_the_index_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    for b in 0..10 {
        let batch: Vec<_> = (0..10_000)
            .map(|i| json!({"scope": "token", "iss": "https://idp", "jti": format!("l{b}-{i}")}))
            .collect();
        let r = veto.post_json("/v1/revocations/batch", &json!(batch));
        assert_eq!(r.status(), 201);
    }
    veto.stop();
    let port = veto.port();
    let args = veto.args.clone();
    drop(veto);
    let mut child = std::process::Command::new(support::veto_bin())
        .args(&args)
        .env("VETO_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let http = reqwest::blocking::Client::new();
    let check = format!("http://127.0.0.1:{port}/v1/check?iss=https://idp&jti=l9-9999");
    let started = std::time::Instant::now();
    let (mut loading, mut refused_after_bind, mut bound) = (0, 0, false);
    let revoked = loop {
        match http.get(&check).send() {
            Ok(r) if r.status() == 503 => {
                bound = true;
                loading += 1;
                let body: serde_json::Value = r.json().unwrap();
                assert_eq!(body["error"], "unavailable", "{body}");
                let health = http
                    .get(format!("http://127.0.0.1:{port}/healthz"))
                    .send()
                    .unwrap();
                assert_eq!(health.status(), 200);
                let ready = http
                    .get(format!("http://127.0.0.1:{port}/readyz"))
                    .send()
                    .unwrap();
                assert!(ready.status() == 503 || ready.status() == 200);
            }
            Ok(r) => {
                assert_eq!(r.status(), 200);
                break r.json::<serde_json::Value>().unwrap()["revoked"] == true;
            }
            Err(_) if bound => refused_after_bind += 1,
            Err(_) => {}
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(revoked, "the first 200 said not revoked");
    assert_eq!(refused_after_bind, 0);
    assert!(
        loading > 0,
        "the index loaded before the port answered once"
    );
}

/// The watch limits are settings like any other: with `--max-watchers 1` a
/// second watch stream is refused while the first is open.
#[test]
fn the_watch_limits_are_flags() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &["--max-watchers", "1", "--watch-buffer", "10"]);
    let first = veto.admin_get("/v1/watch");
    assert_eq!(first.status(), 200);
    let second = veto.admin_get("/v1/watch");
    assert_eq!(second.status(), 503, "{:?}", second.text());
    drop(first);
    // A limit of zero is refused at start, with the flag's name.
    let out = std::process::Command::new(support::veto_bin())
        .args(["serve", "--max-watchers", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-watchers"));
}
