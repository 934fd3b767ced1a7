//! Who may replicate: a node from another CA is refused and gets nothing; an
//! authenticated, listed peer that sends garbage is disconnected and the
//! node keeps serving.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{eventually, free_udp_port, make_certs, tls_args, Veto};
use veto_transport::tls::{ClusterTls, TlsFiles};
use veto_transport::{Lane, Transport, TransportConfig, TransportEvent};

#[test]
fn a_node_with_a_certificate_from_another_ca_is_refused_and_gets_nothing() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    make_certs(ours.path(), &["member"]);
    make_certs(theirs.path(), &["intruder"]);
    let (member_port, intruder_port) = (free_udp_port(), free_udp_port());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let member = Veto::start_with(
        d1.path(),
        &tls_args(ours.path(), "member", member_port, "r1"),
    );
    let mut intruder_args = tls_args(theirs.path(), "intruder", intruder_port, "r2");
    intruder_args.extend(["--peer".to_owned(), format!("127.0.0.1:{member_port}")]);
    let intruder = Veto::start_with(d2.path(), &intruder_args);

    member.revoke(json!({"scope": "token", "jti": "members-only"}));
    intruder.revoke(json!({"scope": "token", "jti": "forged"}));
    // Whichever side verifies first refuses the handshake: here the intruder's
    // dial fails on the member's certificate, before any message is read.
    let refused = |node: &Veto| {
        let metrics = node.get("/metrics").text().unwrap();
        metrics
            .lines()
            .any(|l| l.starts_with("veto_gossip_tls_rejected_total") && !l.ends_with(" 0"))
    };
    eventually(
        Duration::from_secs(20),
        "a refused handshake is counted",
        || refused(&member) || refused(&intruder),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !member.revoked(&[("jti", "forged")]),
        "a record crossed from another CA"
    );
    assert!(
        !intruder.revoked(&[("jti", "members-only")]),
        "the intruder received a record"
    );
    assert_eq!(member.status()["revocations"], 1);
    assert_eq!(intruder.status()["revocations"], 1);
    assert!(member.status()["peers"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_is_disconnected_and_the_node_keeps_serving() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["node", "rogue"]);
    let node_port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let args = tls_args(certs.path(), "node", node_port, "r1");
    let node = tokio::task::spawn_blocking(move || {
        let node = Veto::start_with(dir.path(), &args);
        node.revoke(json!({"scope": "token", "jti": "still-here"}));
        (node, dir)
    })
    .await
    .unwrap();

    // A peer with a valid certificate, on the node's peer list, that speaks
    // nonsense after the handshake. The node dials it (and only the node, so
    // there is one connection to misuse).
    let files = TlsFiles {
        ca: certs.path().join("ca.pem"),
        cert: certs.path().join("rogue.pem"),
        key: certs.path().join("rogue.key"),
    };
    let tls = ClusterTls::load(&files).unwrap();
    let (rogue, mut events) =
        Transport::bind(TransportConfig::new("127.0.0.1:0".parse().unwrap(), tls))
            .await
            .unwrap();
    let rogue_addr = rogue.local_addr().to_string();
    let node = tokio::task::spawn_blocking(move || {
        let r = node
            .0
            .post_json("/v1/peers", &json!({"addr": rogue_addr, "name": "rogue"}));
        assert_eq!(r.status(), 201);
        node
    })
    .await
    .unwrap();
    let conn = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            TransportEvent::Connected { conn, .. } => break conn,
            _ => continue,
        }
    };
    rogue
        .send(
            conn,
            Lane::Urgent,
            bytes::Bytes::from_static(b"\xff\xfe this is not a veto message"),
        )
        .unwrap();
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            TransportEvent::Disconnected { conn: c, reason } if c == conn => break reason,
            _ => continue,
        }
    };
    assert!(!reason.is_empty());

    let (node, _dir) = node;
    tokio::task::spawn_blocking(move || {
        assert!(
            node.revoked(&[("jti", "still-here")]),
            "the node stopped serving"
        );
        node.revoke(json!({"scope": "token", "jti": "after-garbage"}));
        assert!(node.revoked(&[("jti", "after-garbage")]));
    })
    .await
    .unwrap();
}
