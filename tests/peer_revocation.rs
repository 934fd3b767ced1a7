//! Node certificates revoked through veto itself: a `peer` record, made with
//! `veto peers revoke-cert`, replicates like any other, and every node that
//! holds it refuses that certificate (by name or fingerprint), cuts the
//! connections it has with it, and never hears from it again; a node's name
//! is only ever the one its certificate proves; and the peer list is an
//! allow-list on accept. Real processes, real QUIC, real certificates.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use support::mesh::{connected_to, peer_refusals, wait_connected, Mesh};
use support::{
    eventually, free_udp_port, gateway_client, get_with_bearer, jwt, make_certs, tls_args,
    veto_bin, Veto, ADMIN_TOKEN,
};

/// Runs `veto ARGS --node NODE` with the admin token; asserts success.
fn veto_at(node: &Veto, args: &[&str]) -> String {
    let out = Command::new(veto_bin())
        .args(args)
        .args(["--node", &node.url])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    stdout(&out, args)
}

fn stdout(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "veto {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn peers_of(node: &Veto) -> Vec<Value> {
    node.status()["peers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The `peer` records `node` holds.
fn peer_records(node: &Veto) -> Vec<Value> {
    let list: Value = node.admin_get("/v1/revocations?scope=peer").json().unwrap();
    list["records"].as_array().cloned().unwrap_or_default()
}

/// `veto cert node` for `name` into `certs`, with `extra` flags; the
/// fingerprint it prints.
fn issue_cert(certs: &Path, name: &str, extra: &[&str]) -> String {
    let d = certs.display().to_string();
    let mut args = vec!["cert", "node", "--ca-dir", &d, "--name", name, "--out", &d];
    args.extend_from_slice(extra);
    let out = Command::new(veto_bin()).args(&args).output().unwrap();
    let printed = stdout(&out, &args);
    let sha = printed
        .lines()
        .find_map(|l| l.strip_prefix("sha256 "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no fingerprint printed: {printed}"))
        .to_owned();
    assert_eq!(sha.len(), 64, "{printed}");
    assert!(
        printed.contains(&format!("veto peers revoke-cert {sha}")),
        "{printed}"
    );
    sha
}

#[test]
fn a_revoked_certificate_is_cut_off_everywhere_and_refused_by_a_node_that_never_met_it() {
    // a, b and c fully meshed (each also lists d's address, for later).
    let mesh = Mesh::new(&["a", "b", "c", "d"]);
    let (a, b, c) = (mesh.start(0), mesh.start(1), mesh.start(2));
    wait_connected(&[&a, &b, &c], 2);

    let printed = veto_at(
        &a,
        &["peers", "revoke-cert", "c", "--reason", "host compromised"],
    );
    let record: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(record["scope"], "peer");
    assert_eq!(record["name"], "c");
    assert_eq!(record["reason"], "host compromised");
    assert!(record["cert_sha256"].is_null());

    // Cut off at the node that revoked it, and at b once the record arrived.
    for (node, what) in [(&a, "a"), (&b, "b")] {
        eventually(Duration::from_secs(20), &format!("{what} drops c"), || {
            !connected_to(node, "c")
        });
        eventually(
            Duration::from_secs(30),
            &format!("{what} refuses c"),
            || peer_refusals(node, "revoked") > 0,
        );
    }
    eventually(Duration::from_secs(20), "c has lost a and b", || {
        !connected_to(&c, "a") && !connected_to(&c, "b")
    });
    // What c revokes from now on reaches neither.
    c.revoke(json!({"scope": "token", "jti": "from-c-after"}));
    std::thread::sleep(Duration::from_secs(3));
    for node in [&a, &b] {
        assert!(
            !node.revoked(&[("jti", "from-c-after")]),
            "{}",
            node.status()
        );
        assert!(!connected_to(node, "c"), "{}", node.status());
    }
    // The record itself reached b: the two agree.
    eventually(Duration::from_secs(20), "a and b agree", || {
        a.digest() == b.digest()
    });

    // A peer record is no token scope: lookups naming "c" everywhere pass.
    for (k, v) in [
        ("sub", "c"),
        ("jti", "c"),
        ("kid", "c"),
        ("sid", "c"),
        ("iss", "c"),
    ] {
        assert!(!a.revoked(&[(k, v)]), "{k}=c answered revoked");
    }
    let token = jwt(
        json!({"alg": "none", "kid": "c"}),
        json!({"iss": "c", "sub": "c", "jti": "c", "sid": "c", "iat": 1}),
    );
    let auth = get_with_bearer(
        &gateway_client(),
        &format!("{}/v1/auth", a.url),
        Some(&token),
    );
    assert_eq!(auth.status(), 200);

    // d joins after the record replicated, lists a and b, and gets it.
    let mut args_d = tls_args(mesh.certs.path(), "d", mesh.ports[3], "region-d");
    for port in &mesh.ports[..2] {
        args_d.extend(["--peer".to_owned(), format!("127.0.0.1:{port}")]);
    }
    let d = Veto::start_with(&mesh.dir(3), &args_d);
    eventually(Duration::from_secs(30), "d holds the peer record", || {
        peer_records(&d).iter().any(|r| r["name"] == "c")
    });
    // c already dials d (the mesh lists it); now d lists c too. d never
    // talked to c, and refuses it both ways.
    let c_addr = format!("127.0.0.1:{}", mesh.ports[2]);
    veto_at(&d, &["peers", "add", &c_addr, "--name", "c"]);
    eventually(Duration::from_secs(30), "d refuses c", || {
        peer_refusals(&d, "revoked") > 0
    });
    eventually(Duration::from_secs(30), "d shows c refused", || {
        peers_of(&d)
            .iter()
            .any(|p| p["listed_as"] == "c" && p["state"] == "refused")
    });
    c.revoke(json!({"scope": "token", "jti": "from-c-to-d"}));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!d.revoked(&[("jti", "from-c-to-d")]));
    assert!(!d.revoked(&[("jti", "from-c-after")]));
    assert!(!connected_to(&d, "c"), "{}", d.status());
    assert!(connected_to(&d, "a"), "{}", d.status());
}

#[test]
fn a_certificate_revoked_by_fingerprint_is_refused_and_its_successor_admitted() {
    let mesh = Mesh::new(&["x", "y"]);
    // y's certificate again, so that the test knows its fingerprint.
    let old = issue_cert(mesh.certs.path(), "y", &["--force"]);
    let x = mesh.start(0);
    let y = mesh.start(1);
    wait_connected(&[&x, &y], 1);
    x.revoke(json!({"scope": "token", "jti": "before"}));
    eventually(Duration::from_secs(20), "y has x's record", || {
        y.revoked(&[("jti", "before")])
    });

    let printed = veto_at(&x, &["peers", "revoke-cert", &old.to_uppercase()]);
    let record: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(record["cert_sha256"], old);
    assert!(record["name"].is_null());
    eventually(Duration::from_secs(20), "x drops y", || {
        !connected_to(&x, "y")
    });
    eventually(Duration::from_secs(30), "x refuses y's certificate", || {
        peer_refusals(&x, "revoked") > 0
    });
    y.revoke(json!({"scope": "token", "jti": "old-cert"}));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!x.revoked(&[("jti", "old-cert")]));

    // Rotation: a new certificate for y, a restart, and y is a member again.
    let new = issue_cert(mesh.certs.path(), "y", &["--force", "--days", "30"]);
    assert_ne!(new, old);
    let y = y.restart();
    eventually(
        Duration::from_secs(30),
        "y is back under its new certificate",
        || x.revoked(&[("jti", "old-cert")]),
    );
    eventually(Duration::from_secs(20), "x shows y connected", || {
        connected_to(&x, "y")
    });
    assert!(peer_records(&y).iter().any(|r| r["cert_sha256"] == old));
}

/// b's certificate says "b", whatever b calls itself (`--name c`) or an
/// operator lists its address as: no status shows it as "c".
#[test]
fn a_node_is_only_ever_the_name_its_certificate_proves() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["a1", "a2", "b"]);
    let ports: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let b_addr = format!("127.0.0.1:{}", ports[2]);
    let a1 = Veto::start_with(
        dirs[0].path(),
        &tls_args(certs.path(), "a1", ports[0], "r1"),
    );
    let mut args_a2 = tls_args(certs.path(), "a2", ports[1], "r2");
    args_a2.extend(["--peer".to_owned(), b_addr.clone()]);
    let a2 = Veto::start_with(dirs[1].path(), &args_a2);
    // b claims another node's name; its certificate is b's.
    let mut args_b = tls_args(certs.path(), "b", ports[2], "r3");
    let name = args_b.iter().position(|a| a == "--name").unwrap();
    args_b[name + 1] = "c".into();
    for port in &ports[..2] {
        args_b.extend(["--peer".to_owned(), format!("127.0.0.1:{port}")]);
    }
    let b = Veto::start_with(dirs[2].path(), &args_b);
    // a1's operator believes c is at b's address.
    veto_at(&a1, &["peers", "add", &b_addr, "--name", "c"]);

    eventually(
        Duration::from_secs(30),
        "a2 knows b by its certificate",
        || connected_to(&a2, "b"),
    );
    eventually(
        Duration::from_secs(30),
        "a1 refuses b at c's address",
        || peer_refusals(&a1, "name_mismatch") > 0,
    );
    eventually(
        Duration::from_secs(30),
        "a1 shows the address refused as b",
        || {
            peers_of(&a1).iter().any(|p| {
                p["addr"] == b_addr.as_str()
                    && p["state"] == "refused"
                    && p["name"] == "b"
                    && p["listed_as"] == "c"
            })
        },
    );
    // b's own dials to a1 are refused too: a1 lists no "b".
    eventually(Duration::from_secs(30), "a1 refuses b's dials", || {
        peer_refusals(&a1, "not_listed") > 0
    });
    b.revoke(json!({"scope": "token", "jti": "from-b"}));
    eventually(Duration::from_secs(20), "a2 has b's record", || {
        a2.revoked(&[("jti", "from-b")])
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(!a1.revoked(&[("jti", "from-b")]));
    for node in [&a1, &a2] {
        let peers = peers_of(node);
        assert!(
            peers.iter().all(|p| p["name"] != "c"),
            "a name no certificate proved: {peers:?}"
        );
    }
    assert!(!connected_to(&a1, "b"), "{}", a1.status());
}

#[test]
fn a_node_not_on_the_peer_list_that_dials_in_is_refused_and_counted() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["a", "e"]);
    let (port_a, port_e) = (free_udp_port(), free_udp_port());
    let (dir_a, dir_e) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Veto::start_with(dir_a.path(), &tls_args(certs.path(), "a", port_a, "r1"));
    let mut args_e = tls_args(certs.path(), "e", port_e, "r2");
    args_e.extend(["--peer".to_owned(), format!("127.0.0.1:{port_a}")]);
    let e = Veto::start_with(dir_e.path(), &args_e);
    a.revoke(json!({"scope": "token", "jti": "from-a"}));
    e.revoke(json!({"scope": "token", "jti": "from-e"}));

    eventually(
        Duration::from_secs(30),
        "a refuses e, more than once",
        || peer_refusals(&a, "not_listed") >= 2,
    );
    assert!(peers_of(&a).is_empty(), "{}", a.status());
    assert!(!connected_to(&e, "a"), "{}", e.status());
    assert!(!a.revoked(&[("jti", "from-e")]));
    assert!(!e.revoked(&[("jti", "from-a")]));
    // Listed, it is a member: e's own dial now connects.
    veto_at(&a, &["peers", "add", "127.0.0.1:1", "--name", "e"]);
    eventually(Duration::from_secs(30), "e's record arrives", || {
        a.revoked(&[("jti", "from-e")])
    });
}
