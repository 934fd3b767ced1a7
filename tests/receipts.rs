//! Proof of enforcement with real processes: receipts and `?wait=` over real
//! QUIC links slowed by `veto-relay`, a partitioned region named as pending
//! and completing after the heal, watermarks that advance with no traffic,
//! and the bad inputs of the receipt API.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::regions::{origins, regions};
use support::{eventually, Veto, ADMIN_TOKEN};

fn post(node: &Veto, path_and_query: &str, body: &Value) -> (u16, Value) {
    let r = node.post_json(path_and_query, body);
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn states(receipt: &Value) -> Vec<(String, String)> {
    receipt["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["region"].as_str().unwrap().to_owned(),
                n["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn wait_all_answers_once_the_slowest_region_holds_it_and_names_it() {
    let r = regions(40, 90);
    let start = Instant::now();
    let (status, body) = post(
        &r.us,
        "/v1/revocations?wait=all&timeout=10",
        &json!({"scope": "token", "jti": "leaked-1"}),
    );
    let took = start.elapsed();
    assert_eq!(status, 201, "{body}");
    let receipt = &body["receipt"];
    assert_eq!(receipt["complete"], true, "{body}");
    assert_eq!(receipt["id"], body["id"]);
    assert_eq!(
        states(receipt),
        vec![
            ("ap-south".into(), "enforced".into()),
            ("eu-west".into(), "enforced".into()),
            ("us-east".into(), "enforced".into()),
        ]
    );
    // The proof has to come back: the slower link's round trip at least.
    assert!(took >= Duration::from_millis(180), "{took:?}");
    // Reported at once, not with the next anti-entropy round (5 s).
    assert!(took < Duration::from_millis(1500), "{took:?}");
    for n in receipt["nodes"].as_array().unwrap() {
        assert!(n["enforced_at"].as_f64().unwrap() > 1.7e9, "{n}");
        assert!(n["last_heard"].as_f64().is_some(), "{n}");
    }

    // Waiting for the near region only answers before the far one holds it.
    let start = Instant::now();
    let (status, body) = post(
        &r.us,
        "/v1/revocations?wait=eu-west&timeout=10",
        &json!({"scope": "token", "jti": "leaked-2"}),
    );
    assert_eq!(status, 201, "{body}");
    assert!(
        start.elapsed() < Duration::from_millis(180),
        "{:?}",
        start.elapsed()
    );

    // A batch has one receipt for all its records; a quorum is two of three.
    let (status, body) = post(
        &r.us,
        "/v1/revocations/batch?wait=quorum",
        &json!([{"scope": "token", "jti": "b-1"}, {"scope": "session", "sid": "s-1"}]),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["records"].as_array().unwrap().len(), 2);
    assert_eq!(body["receipt"]["id"], body["records"][0]["id"]);

    // RFC 7009 answers 200 with the receipt.
    let resp = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/oauth2/revoke?wait=2",
            r.us.port()
        ))
        .basic_auth("veto", Some(ADMIN_TOKEN))
        .form(&[("token", "an-opaque-token")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    let enforced = body["receipt"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] == "enforced")
        .count();
    assert!(enforced >= 2, "{body}");
}

#[test]
fn a_partitioned_region_is_named_pending_and_its_receipt_completes_after_the_heal() {
    let r = regions(5, 5);
    r.to_ap.command("partition on");
    let start = Instant::now();
    let (status, body) = post(
        &r.us,
        "/v1/revocations?wait=all&timeout=2",
        &json!({"scope": "subject", "sub": "mallory"}),
    );
    let took = start.elapsed();
    assert_eq!(status, 202, "{body}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let receipt = &body["receipt"];
    assert_eq!(receipt["complete"], false);
    assert_eq!(
        states(receipt),
        vec![
            ("ap-south".into(), "pending".into()),
            ("eu-west".into(), "enforced".into()),
            ("us-east".into(), "enforced".into()),
        ]
    );
    let ap = &receipt["nodes"][0];
    assert!(ap.get("enforced_at").is_none(), "{ap}");
    assert!(ap["last_heard"].as_f64().is_some(), "{ap}");
    // Stored all the same.
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(r.us.revoked(&[("sub", "mallory")]));

    r.to_ap.command("partition off");
    let path = format!("/v1/revocations/{id}/receipt");
    eventually(
        Duration::from_secs(30),
        "the receipt completes after the heal",
        || {
            let resp = r.us.admin_get(&path);
            resp.status() == 200 && resp.json::<Value>().unwrap()["complete"] == true
        },
    );
    // Any node answers for any record, about every node.
    let resp = r.eu.admin_get(&path);
    assert_eq!(resp.status(), 200);
    eventually(
        Duration::from_secs(30),
        "eu-west sees it complete too",
        || r.eu.admin_get(&path).json::<Value>().unwrap()["complete"] == true,
    );
}

#[test]
fn watermarks_advance_with_no_revocation_traffic() {
    let r = regions(5, 5);
    let through = |node: &Veto, name: &str| {
        origins(node)
            .into_iter()
            .find(|o| o["name"] == name)
            .and_then(|o| o["complete_through"].as_f64())
            .unwrap_or(0.0)
    };
    let before = through(&r.eu, "ap");
    // ap-south's heartbeats reach eu-west through us-east.
    eventually(
        Duration::from_secs(30),
        "ap-south's watermark at eu-west moves",
        || through(&r.eu, "ap") > before + 1.0,
    );
    let o = origins(&r.us);
    let own = o.iter().find(|o| o["name"] == "us").unwrap();
    assert_eq!(own["staleness_s"], 0.0);
    assert_eq!(own["region"], "us-east");
    assert_eq!(own["origin"], r.us.status()["node"]["id"]);
    let ap = o.iter().find(|o| o["name"] == "ap").unwrap();
    assert!(ap["staleness_s"].as_f64().unwrap() < 15.0, "{ap}");
    let metrics = r.us.get("/metrics").text().unwrap();
    assert!(
        metrics.contains("veto_origin_staleness_seconds{origin=\"ap\"}"),
        "{metrics}"
    );
    let _ = &r.to_eu;
}

#[test]
fn bad_waits_timeouts_and_receipt_ids_are_refused() {
    let r = regions(1, 1);
    let body = json!({"scope": "token", "jti": "never-stored"});
    for query in [
        "wait=mars",
        "wait=eu-west,mars",
        "wait=0",
        "wait=",
        "wait=all&timeout=-1",
        "wait=all&timeout=soon",
        "wait=all&timeout=61",
        "timeout=5",
        "wait=all&wait=quorum",
    ] {
        let (status, answer) = post(&r.us, &format!("/v1/revocations?{query}"), &body);
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{query}: {answer}");
    }
    // None of them stored anything.
    assert!(!r.us.revoked(&[("jti", "never-stored")]));

    let resp = r.us.admin_get("/v1/revocations/not-an-id/receipt");
    assert_eq!(resp.status(), 400);
    let resp = r.us.admin_get("/v1/revocations/00000000000000ab-7/receipt");
    assert_eq!(resp.status(), 404);
    // Receipts name who revoked what: not without the token.
    let stored = r.us.revoke(json!({"scope": "token", "jti": "stored"}));
    let path = format!("/v1/revocations/{}/receipt", stored["id"].as_str().unwrap());
    assert_eq!(r.us.get(&path).status(), 401);
    assert_eq!(r.us.admin_get(&path).status(), 200);
}

#[test]
fn a_single_node_without_peers_answers_its_own_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let node = Veto::start(dir.path(), &[]);
    let start = Instant::now();
    let (status, body) = post(
        &node,
        "/v1/revocations?wait=all&timeout=5",
        &json!({"scope": "token", "jti": "alone"}),
    );
    assert_eq!(status, 201, "{body}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(body["receipt"]["complete"], true, "{body}");
    assert_eq!(
        body["receipt"]["nodes"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    let path = format!("/v1/revocations/{}/receipt", body["id"].as_str().unwrap());
    let receipt: Value = node.admin_get(&path).json().unwrap();
    assert_eq!(receipt["nodes"][0]["state"], "enforced", "{receipt}");
}
