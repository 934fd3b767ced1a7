//! SIGHUP reloads the `--config` file of a running node: the peer list
//! follows the file, and a file with an error is refused as a whole.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::mesh::connected_to;
use support::{eventually, free_udp_port, make_certs, tls_args, Veto};

fn hangup(node: &Veto) {
    let pid = node.child.id().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success(), "kill -HUP {pid}");
}

/// The addresses of the peers `node` lists at `/v1/peers`.
fn peer_addrs(node: &Veto) -> Vec<String> {
    let mut addrs: Vec<String> = node
        .admin_get("/v1/peers")
        .json::<serde_json::Value>()
        .unwrap()["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["addr"].as_str().unwrap().to_owned())
        .collect();
    addrs.sort();
    addrs
}

/// `veto_config_reloads_total{result=...}`.
fn reloads(node: &Veto, result: &str) -> u64 {
    let prefix = format!("veto_config_reloads_total{{result=\"{result}\"}} ");
    node.get("/metrics")
        .text()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn sighup_applies_the_peer_list_and_refuses_an_invalid_file() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["a", "b", "c"]);
    let (port_a, port_b, port_c) = (free_udp_port(), free_udp_port(), free_udp_port());
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // b and c list a: a node accepts a dial-in only from a peer it lists.
    let listing_a = |name: &str, port: u16| {
        let mut args = tls_args(certs.path(), name, port, "r1");
        args.extend(["--peer".to_owned(), format!("127.0.0.1:{port_a}")]);
        args
    };
    let b = Veto::start_with(dir_b.path(), &listing_a("b", port_b));
    let c = Veto::start_with(dir_c.path(), &listing_a("c", port_c));
    let (addr_b, addr_c) = (format!("127.0.0.1:{port_b}"), format!("127.0.0.1:{port_c}"));

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("veto.toml");
    write_config(
        &config,
        &format!("peers = [\"{addr_b}\"]\ngc_grace = 3600\n"),
    );
    let mut args_a = tls_args(certs.path(), "a", port_a, "r1");
    args_a.extend(["--config".to_owned(), config.display().to_string()]);
    let a = Veto::start_with(dir_a.path(), &args_a);
    assert_eq!(peer_addrs(&a), [addr_b.as_str()]);
    eventually(Duration::from_secs(20), "a connects to b", || {
        connected_to(&a, "b")
    });
    assert_eq!((reloads(&a, "ok"), reloads(&a, "error")), (0, 0));

    // b leaves the file, c joins it; `gc_grace` changes too, which waits
    // for a restart (a warning) and does not fail the reload.
    write_config(&config, &format!("peers = [\"{addr_c}\"]\ngc_grace = 60\n"));
    hangup(&a);
    eventually(Duration::from_secs(20), "the reload is counted", || {
        reloads(&a, "ok") == 1
    });
    assert_eq!(peer_addrs(&a), [addr_c.as_str()]);
    eventually(Duration::from_secs(20), "a connects to c", || {
        connected_to(&a, "c")
    });
    assert!(!connected_to(&a, "b"), "b was removed");
    assert_eq!(reloads(&a, "error"), 0);

    // An invalid file is refused as a whole: a good peer next to an unknown
    // key changes nothing.
    write_config(
        &config,
        &format!("peers = [\"{addr_b}\"]\nno_such_setting = 1\n"),
    );
    hangup(&a);
    eventually(
        Duration::from_secs(20),
        "the refused reload is counted",
        || reloads(&a, "error") == 1,
    );
    assert_eq!(peer_addrs(&a), [addr_c.as_str()]);
    assert_eq!(reloads(&a, "ok"), 1);

    // So is a file that is not TOML; the node still serves.
    write_config(&config, "peers = [");
    hangup(&a);
    eventually(
        Duration::from_secs(20),
        "the second refusal is counted",
        || reloads(&a, "error") == 2,
    );
    assert_eq!(peer_addrs(&a), [addr_c.as_str()]);
    assert!(a.get("/readyz").status().is_success());
    drop((b, c));
}

/// An EC P-256 key for test SETs only (made with `openssl genpkey`).
const EC_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtf6FOv5aSdpaDSO1
5k6r5vEgIZnQyoWSZAdeMXO0xUWhRANCAAS7hFKjo619i5bX5xy6uZzseHusggDp
dlZ1NQnYjWGNE0gZlYxBxLPRgxtp8jnk/5LNfapKVgb+5aYfZH1NICrB
-----END PRIVATE KEY-----
";
const ISS: &str = "https://idp.example.com/";
const AUD: &str = "https://veto.example/events";

/// A signed `tokens-revoked` SET for `sub`.
fn set_for(sub: &str, jti: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let t = support::now();
    let claims = serde_json::json!({
        "iss": ISS, "aud": AUD, "iat": t, "jti": jti,
        "events": {"https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked": {
            "subject": {"format": "iss_sub", "iss": ISS, "sub": sub},
            "event_timestamp": t - 60,
        }},
    });
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some("secevent+jwt".into());
    h.kid = Some("k1".into());
    let key = EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

fn transmitter_config() -> String {
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    let key = jsonwebtoken::EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap();
    format!("[[transmitters]]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\njwks = '''{jwks}'''\n")
}

/// `POST /v1/events`: the status and the `err` code, if any.
fn push(node: &Veto, set: &str) -> (u16, String) {
    let r = node
        .http
        .post(format!("{}/v1/events", node.url))
        .header("Content-Type", "application/secevent+jwt")
        .body(set.to_owned())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().unwrap_or_default();
    (status, body["err"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn sighup_replaces_the_transmitters() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("veto.toml");
    write_config(&config, "");
    let config_arg = config.display().to_string();
    let node = Veto::start(&dir.path().join("data"), &["--config", &config_arg]);
    assert_eq!(
        push(&node, &set_for("alice", "e1")),
        (400, "invalid_issuer".into())
    );

    write_config(&config, &transmitter_config());
    hangup(&node);
    eventually(Duration::from_secs(20), "the reload is counted", || {
        reloads(&node, "ok") == 1
    });
    assert_eq!(push(&node, &set_for("alice", "e2")), (202, String::new()));
    let old = (support::now() - 120).to_string();
    assert!(node.revoked(&[("iss", ISS), ("sub", "alice"), ("iat", &old)]));

    write_config(&config, "");
    hangup(&node);
    eventually(
        Duration::from_secs(20),
        "the second reload is counted",
        || reloads(&node, "ok") == 2,
    );
    assert_eq!(
        push(&node, &set_for("bob", "e3")),
        (400, "invalid_issuer".into())
    );
}

/// A node with nothing to reload (no `--config`, no tokens file, no API
/// certificate) takes SIGHUP as a no-op instead of dying of it: operators
/// send it to whole fleets after editing files.
#[test]
fn sighup_never_ends_a_node_with_nothing_to_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    veto.revoke(serde_json::json!({"scope": "token", "iss": "https://idp", "jti": "kept"}));
    for _ in 0..3 {
        hangup(&veto);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            veto.child.try_wait().unwrap().is_none(),
            "the node exited on SIGHUP"
        );
    }
    assert!(veto.revoked(&[("iss", "https://idp"), ("jti", "kept")]));
}
