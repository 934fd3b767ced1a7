//! Replication between real `veto` processes over real QUIC with real
//! certificates: propagation, crash recovery, run-time membership and backlogs.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{eventually, free_udp_port, make_certs, tls_args, veto_bin, Veto, ADMIN_TOKEN};

struct Cluster {
    nodes: Vec<Veto>,
    _dirs: Vec<tempfile::TempDir>,
    _certs: tempfile::TempDir,
}

/// Starts a full mesh of named nodes, each configured with every other as a peer.
fn full_mesh(names: &[&str]) -> Cluster {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), names);
    let ports: Vec<u16> = names.iter().map(|_| free_udp_port()).collect();
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = tls_args(certs.path(), name, ports[i], &format!("region-{i}"));
        for (j, port) in ports.iter().enumerate() {
            if j != i {
                args.push("--peer".into());
                args.push(format!("127.0.0.1:{port}"));
            }
        }
        nodes.push(Veto::start_with(dir.path(), &args));
        dirs.push(dir);
    }
    Cluster {
        nodes,
        _dirs: dirs,
        _certs: certs,
    }
}

fn converged(nodes: &[&Veto]) -> bool {
    let digests: Vec<String> = nodes.iter().map(|n| n.digest()).collect();
    digests.windows(2).all(|w| w[0] == w[1])
}

#[test]
fn a_revocation_at_one_node_is_enforced_at_the_others() {
    let c = full_mesh(&["us-east", "eu-west", "ap-south"]);
    let [a, b, cc] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    eventually(Duration::from_secs(30), "peers connected", || {
        a.status()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "connected")
            .count()
            == 2
    });
    a.revoke(json!({"scope": "token", "iss": "https://idp", "jti": "leaked-1"}));
    b.revoke(json!({"scope": "subject", "sub": "mallory", "before": support::now()}));
    for n in [a, b, cc] {
        eventually(Duration::from_secs(20), "revocations replicated", || {
            n.revoked(&[("iss", "https://idp"), ("jti", "leaked-1")])
                && n.revoked(&[("sub", "mallory"), ("iat", "1")])
        });
    }
    eventually(Duration::from_secs(20), "digests agree", || {
        converged(&[a, b, cc])
    });
    assert_eq!(a.status()["revocations"], 2);
    let peers = a.status()["peers"].as_array().unwrap().clone();
    assert!(
        peers
            .iter()
            .all(|p| p["state"] == "connected" && p["lag"] == 0),
        "{peers:?}"
    );
    let names: Vec<&str> = peers.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"eu-west") && names.contains(&"ap-south"),
        "{names:?}"
    );
    let metrics = cc.get("/metrics").text().unwrap();
    assert!(
        metrics.contains("veto_propagation_seconds"),
        "propagation latency is exported"
    );
}

#[test]
fn a_node_killed_with_sigkill_catches_up_after_restart() {
    let mut c = full_mesh(&["n1", "n2", "n3"]);
    c.nodes[0].revoke(json!({"scope": "token", "jti": "before-crash"}));
    eventually(Duration::from_secs(20), "first record everywhere", || {
        c.nodes[2].revoked(&[("jti", "before-crash")])
    });
    c.nodes[2].kill9();
    for i in 0..200 {
        c.nodes[i % 2].revoke(json!({"scope": "token", "jti": format!("while-down-{i}")}));
    }
    let dead = c.nodes.remove(2);
    let back = dead.restart();
    eventually(Duration::from_secs(60), "restarted node caught up", || {
        converged(&[&c.nodes[0], &c.nodes[1], &back])
    });
    assert_eq!(back.status()["revocations"], 201);
    // The status digest counts a replicated record once its write commits;
    // the index takes it a moment later, after the audit log. So the last
    // record may be stored but not yet enforced when the digests first agree.
    eventually(Duration::from_secs(5), "last record enforced", || {
        back.revoked(&[("jti", "while-down-199")])
    });
    assert!(back.revoked(&[("jti", "before-crash")]));
}

#[test]
fn a_node_added_at_run_time_receives_the_whole_backlog() {
    let names = ["old-1", "old-2", "newcomer"];
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &names);
    let ports: Vec<u16> = names.iter().map(|_| free_udp_port()).collect();
    let dirs: Vec<_> = names.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut a_args = tls_args(certs.path(), names[0], ports[0], "r0");
    a_args.extend(["--peer".to_owned(), format!("127.0.0.1:{}", ports[1])]);
    let a = Veto::start_with(dirs[0].path(), &a_args);
    // Each side of a link lists the other.
    let back_to_a = |mut args: Vec<String>| {
        args.extend(["--peer".to_owned(), format!("127.0.0.1:{}", ports[0])]);
        args
    };
    let b = Veto::start_with(
        dirs[1].path(),
        &back_to_a(tls_args(certs.path(), names[1], ports[1], "r1")),
    );
    let n = 50_000;
    for chunk in 0..(n / 10_000) {
        let batch: Vec<_> = (0..10_000)
            .map(|i| json!({"scope": "token", "iss": "https://idp", "jti": format!("bk-{}", chunk * 10_000 + i)}))
            .collect();
        let r =
            if chunk % 2 == 0 { &a } else { &b }.post_json("/v1/revocations/batch", &json!(batch));
        assert_eq!(r.status(), 201);
    }
    eventually(Duration::from_secs(60), "two old nodes agree", || {
        converged(&[&a, &b])
    });

    let newcomer = Veto::start_with(
        dirs[2].path(),
        &back_to_a(tls_args(certs.path(), names[2], ports[2], "r2")),
    );
    assert_eq!(newcomer.status()["revocations"], 0);
    let out = Command::new(veto_bin())
        .args([
            "peers",
            "add",
            &format!("127.0.0.1:{}", ports[2]),
            "--name",
            "newcomer",
            "--node",
            &a.url,
        ])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "veto peers add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(Duration::from_secs(120), "newcomer has the backlog", || {
        converged(&[&a, &newcomer])
    });
    assert_eq!(newcomer.status()["revocations"], n);
    assert!(newcomer.revoked(&[("iss", "https://idp"), ("jti", "bk-0")]));
    assert!(newcomer.revoked(&[("iss", "https://idp"), ("jti", &format!("bk-{}", n - 1))]));

    // The peer list survives a restart, and removing a peer closes its connection.
    let list = Command::new(veto_bin())
        .args(["peers", "list", "--node", &a.url])
        .env("VETO_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("newcomer"));
    let a = a.restart();
    let configured: Vec<String> = a.status()["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["addr"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        configured.contains(&format!("127.0.0.1:{}", ports[2])),
        "{configured:?}"
    );
    let out = Command::new(veto_bin())
        .args(["peers", "remove", "newcomer", "--node", &a.url])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        Duration::from_secs(20),
        "newcomer disconnected from a",
        || {
            !newcomer.status()["peers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "old-1" && p["state"] == "connected")
        },
    );
}
