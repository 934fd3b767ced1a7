//! `--audit-log`: a JSON line per record, local ones written before the 201
//! (a kill -9 right after it keeps the line), replicated ones at the peer.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, free_udp_port, make_certs, tls_args, Veto};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON value"))
        .collect()
}

#[test]
fn records_are_logged_where_made_before_the_answer_and_where_replicated() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["a", "b"]);
    let logs = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (logs.path().join("a.jsonl"), logs.path().join("b.jsonl"));
    let (port_a, port_b) = (free_udp_port(), free_udp_port());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut args_a = tls_args(certs.path(), "a", port_a, "r1");
    args_a.extend(["--peer".to_owned(), format!("127.0.0.1:{port_b}")]);
    args_a.extend(["--audit-log".to_owned(), log_a.display().to_string()]);
    let mut args_b = tls_args(certs.path(), "b", port_b, "r2");
    args_b.extend(["--peer".to_owned(), format!("127.0.0.1:{port_a}")]);
    args_b.extend(["--audit-log".to_owned(), log_b.display().to_string()]);
    let mut a = Veto::start_with(dir_a.path(), &args_a);
    let b = Veto::start_with(dir_b.path(), &args_b);

    let record = a.revoke(json!({"scope": "session", "sid": "s-1", "reason": "<hijacked>"}));
    a.kill9();
    let logged = lines(&log_a);
    assert_eq!(logged.len(), 1, "{logged:?}");
    let line = &logged[0];
    assert_eq!(line["schema"], "veto.audit.v1");
    assert_eq!(line["source"], "local");
    assert_eq!(line["node"], "a");
    assert!(line["logged_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        line["record"], record,
        "the line holds the record as answered"
    );

    let a = a.restart();
    eventually(
        Duration::from_secs(30),
        "b logs the replicated record",
        || {
            lines(&log_b)
                .iter()
                .any(|l| l["record"]["id"] == record["id"])
        },
    );
    let at_b = lines(&log_b);
    let line = at_b
        .iter()
        .find(|l| l["record"]["id"] == record["id"])
        .unwrap();
    assert_eq!(line["source"], "replicated");
    assert_eq!(line["node"], "b");
    assert_eq!(line["record"]["reason"], "<hijacked>");
    assert_eq!(at_b.len(), 1, "each record once: {at_b:?}");
    // The restarted node appends; it does not log its own record again.
    b.revoke(json!({"scope": "token", "jti": "t-2"}));
    eventually(Duration::from_secs(30), "a logs b's record", || {
        lines(&log_a).len() == 2
    });
    assert_eq!(lines(&log_a)[1]["source"], "replicated");
    drop(a);
}
