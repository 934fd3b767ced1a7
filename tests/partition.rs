//! Partitions and lossy links between real nodes, through the project's own
//! fault-injecting UDP relay (`veto-relay`).

mod support;

use std::time::Duration;

use serde_json::json;
use support::{eventually, free_udp_port, make_certs, tls_args, Relay, Veto};

/// Two sides, {a1, a2} and {b1, b2}. Nodes on a side talk directly; every link
/// across goes through its own relay, dialled only from side A, so that the
/// relays are the only path between the sides.
struct Split {
    a: Vec<Veto>,
    b: Vec<Veto>,
    relays: Vec<Relay>,
    _dirs: Vec<tempfile::TempDir>,
    _certs: tempfile::TempDir,
}

fn split(seed: u64) -> Split {
    let names = ["a1", "a2", "b1", "b2"];
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &names);
    let ports: Vec<u16> = names.iter().map(|_| free_udp_port()).collect();
    let dirs: Vec<_> = names.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut relays = Vec::new();
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let side_a = i < 2;
        let mut args = tls_args(
            certs.path(),
            name,
            ports[i],
            if side_a { "side-a" } else { "side-b" },
        );
        // Both sides of every link list each other; across the partition,
        // both dial through relays, so that cutting them cuts the link.
        let buddy = if i % 2 == 0 { i + 1 } else { i - 1 };
        args.extend(["--peer".to_owned(), format!("127.0.0.1:{}", ports[buddy])]);
        let across = if side_a { 2..4 } else { 0..2 };
        for j in across {
            let relay = Relay::start(ports[j], seed + (i * 4 + j) as u64);
            args.extend(["--peer".to_owned(), format!("127.0.0.1:{}", relay.listen)]);
            relays.push(relay);
        }
        nodes.push(Veto::start_with(dirs[i].path(), &args));
    }
    let b = nodes.split_off(2);
    Split {
        a: nodes,
        b,
        relays,
        _dirs: dirs,
        _certs: certs,
    }
}

fn all_agree(nodes: &[&Veto]) -> bool {
    let d: Vec<String> = nodes.iter().map(|n| n.digest()).collect();
    d.windows(2).all(|w| w[0] == w[1])
}

#[test]
fn revocations_on_both_sides_of_a_partition_converge_after_it_heals() {
    let s = split(1);
    let everyone: Vec<&Veto> = s.a.iter().chain(s.b.iter()).collect();
    s.a[0].revoke(json!({"scope": "token", "jti": "before"}));
    eventually(Duration::from_secs(30), "initial propagation", || {
        s.b[1].revoked(&[("jti", "before")])
    });

    for relay in &s.relays {
        relay.command("partition on");
    }
    for i in 0..20 {
        s.a[i % 2].revoke(json!({"scope": "token", "jti": format!("side-a-{i}")}));
        s.b[i % 2].revoke(json!({"scope": "session", "sid": format!("side-b-{i}")}));
    }
    // Within a side, records still travel; across, nothing does.
    eventually(Duration::from_secs(10), "side A agrees", || {
        all_agree(&[&s.a[0], &s.a[1]])
    });
    eventually(Duration::from_secs(10), "side B agrees", || {
        all_agree(&[&s.b[0], &s.b[1]])
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !s.b[0].revoked(&[("jti", "side-a-0")]),
        "a partitioned record crossed"
    );
    assert!(
        !s.a[0].revoked(&[("sid", "side-b-0")]),
        "a partitioned record crossed"
    );
    // Outlast QUIC's idle timeout so the cross links really drop.
    eventually(Duration::from_secs(30), "cross links down", || {
        s.b[0].status()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| (p["name"] != "a1" && p["name"] != "a2") || p["state"] != "connected")
    });

    for relay in &s.relays {
        relay.command("partition off");
    }
    eventually(
        Duration::from_secs(60),
        "all digests agree after heal",
        || all_agree(&everyone),
    );
    for node in &everyone {
        assert_eq!(node.status()["revocations"], 41);
        for i in 0..20 {
            assert!(node.revoked(&[("jti", &format!("side-a-{i}"))]));
            assert!(node.revoked(&[("sid", &format!("side-b-{i}"))]));
        }
    }
}

#[test]
fn lossy_duplicating_delaying_links_still_converge() {
    let s = split(7);
    let everyone: Vec<&Veto> = s.a.iter().chain(s.b.iter()).collect();
    for relay in &s.relays {
        relay.command("loss 0.2");
        relay.command("dup 0.1");
        relay.command("delay 20 10");
    }
    for i in 0..50 {
        s.a[i % 2].revoke(json!({"scope": "token", "jti": format!("lossy-a-{i}")}));
        s.b[i % 2].revoke(json!({"scope": "key", "kid": format!("lossy-b-{i}")}));
    }
    eventually(
        Duration::from_secs(90),
        "digests agree over lossy links",
        || all_agree(&everyone),
    );
    assert!(s.b[1].revoked(&[("jti", "lossy-a-49")]));
    assert!(s.a[1].revoked(&[("kid", "lossy-b-49")]));
    let stats = s.relays[0].command("stats");
    assert!(
        stats.contains("dropped") || stats.contains("loss"),
        "relay stats: {stats}"
    );
}
