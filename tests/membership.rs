//! A peer removed from a node's peer list is refused by that node whichever
//! side dials, across restarts, until it is added again: a node that still
//! lists the removed one cannot dial back in and replicate. And the list is
//! an allow-list on accept: a node that dials in before it is listed is
//! refused.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::mesh::{connected_to, peer_refusals};
use support::{eventually, free_udp_port, make_certs, tls_args, veto_bin, Veto, ADMIN_TOKEN};

fn peers_cli(args: &[&str], node: &Veto) {
    let out = Command::new(veto_bin())
        .arg("peers")
        .args(args)
        .args(["--node", &node.url])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "veto peers {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_removed_peer_is_refused_whichever_side_dials_until_added_again() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["a", "c"]);
    let (port_a, port_c) = (free_udp_port(), free_udp_port());
    let (dir_a, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args_a = tls_args(certs.path(), "a", port_a, "r1");
    let mut args_c = tls_args(certs.path(), "c", port_c, "r2");
    args_c.extend(["--peer".to_owned(), format!("127.0.0.1:{port_a}")]);
    let a = Veto::start_with(dir_a.path(), &args_a);
    let c = Veto::start_with(dir_c.path(), &args_c);

    c.revoke(json!({"scope": "token", "jti": "while-a-member"}));
    // a does not list c yet: c's dials are refused, and nothing crosses.
    eventually(Duration::from_secs(20), "a refuses an unlisted c", || {
        peer_refusals(&a, "not_listed") > 0
    });
    assert!(!a.revoked(&[("jti", "while-a-member")]));
    // a lists c too, so both sides dial, and c is a member.
    peers_cli(&["add", &format!("127.0.0.1:{port_c}"), "--name", "c"], &a);
    eventually(Duration::from_secs(20), "a has c's revocation", || {
        a.revoked(&[("jti", "while-a-member")])
    });
    eventually(Duration::from_secs(10), "a knows c by name", || {
        connected_to(&a, "c")
    });

    peers_cli(&["remove", "c"], &a);
    // c still lists a and keeps dialling it: each attempt is refused.
    eventually(Duration::from_secs(20), "a refuses c's dials", || {
        peer_refusals(&a, "removed") > 0
    });
    c.revoke(json!({"scope": "token", "jti": "after-removal"}));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!connected_to(&a, "c"), "{}", a.status());
    assert!(
        !a.revoked(&[("jti", "after-removal")]),
        "a removed peer's revocation reached the node that removed it"
    );

    // The removal survives a restart of the node that made it.
    let a = a.restart();
    let before = peer_refusals(&a, "removed");
    eventually(
        Duration::from_secs(20),
        "a refuses c after a restart",
        || peer_refusals(&a, "removed") > before,
    );
    assert!(!a.revoked(&[("jti", "after-removal")]));
    let peers: Value = a.status()["peers"].clone();
    assert!(
        !peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "c" && p["state"] == "connected"),
        "{peers}"
    );

    // Added again by name, it is a member again and what it holds arrives.
    peers_cli(&["add", &format!("127.0.0.1:{port_c}"), "--name", "c"], &a);
    eventually(
        Duration::from_secs(30),
        "c's revocation arrives once re-added",
        || a.revoked(&[("jti", "after-removal")]),
    );
}

/// a lists c by name at an address a cannot reach (c is behind a NAT, say):
/// only c's dials connect, and c can still be removed by name.
#[test]
fn a_node_that_only_dialled_in_can_be_removed_too() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["a", "c"]);
    let (port_a, port_c) = (free_udp_port(), free_udp_port());
    let (dir_a, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Veto::start_with(dir_a.path(), &tls_args(certs.path(), "a", port_a, "r1"));
    let unreachable = format!("127.0.0.1:{}", free_udp_port());
    peers_cli(&["add", &unreachable, "--name", "c"], &a);
    let mut args_c = tls_args(certs.path(), "c", port_c, "r2");
    args_c.extend(["--peer".to_owned(), format!("127.0.0.1:{port_a}")]);
    let c = Veto::start_with(dir_c.path(), &args_c);
    eventually(Duration::from_secs(20), "c dialled in", || {
        connected_to(&a, "c")
    });

    peers_cli(&["remove", "c"], &a);
    eventually(Duration::from_secs(20), "a refuses c's dials", || {
        peer_refusals(&a, "removed") > 0
    });
    c.revoke(json!({"scope": "token", "jti": "from-a-removed-node"}));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!connected_to(&a, "c"), "{}", a.status());
    assert!(!a.revoked(&[("jti", "from-a-removed-node")]));
}

/// After a restart, `--peer` configures the removed node's address again,
/// but its name stays refused; adding the address by name admits it.
#[test]
fn a_removed_peer_still_named_by_a_peer_flag_is_admitted_by_adding_it_by_name() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["a", "c"]);
    let (port_a, port_c) = (free_udp_port(), free_udp_port());
    let (dir_a, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut args_a = tls_args(certs.path(), "a", port_a, "r1");
    args_a.extend(["--peer".to_owned(), format!("127.0.0.1:{port_c}")]);
    let a = Veto::start_with(dir_a.path(), &args_a);
    let mut args_c = tls_args(certs.path(), "c", port_c, "r2");
    args_c.extend(["--peer".to_owned(), format!("127.0.0.1:{port_a}")]);
    let c = Veto::start_with(dir_c.path(), &args_c);
    eventually(Duration::from_secs(20), "a knows c by name", || {
        connected_to(&a, "c")
    });
    peers_cli(&["remove", "c"], &a);
    let a = a.restart();
    c.revoke(json!({"scope": "token", "jti": "refused-until-readmitted"}));
    eventually(Duration::from_secs(20), "a shows c refused", || {
        a.status()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["state"] == "refused")
    });
    assert!(!a.revoked(&[("jti", "refused-until-readmitted")]));
    peers_cli(&["add", &format!("127.0.0.1:{port_c}"), "--name", "c"], &a);
    eventually(Duration::from_secs(30), "c's revocation arrives", || {
        a.revoked(&[("jti", "refused-until-readmitted")])
    });
}
