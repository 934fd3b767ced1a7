//! `deploy/systemd/veto.service`: systemd itself verifies the unit and rates
//! its sandboxing, and the unit's own command line, with the example
//! `deploy/systemd/veto.toml` as its configuration, starts a node that
//! replicates with a peer.
//!
//! The systemd checks are skipped with a message when `systemd-analyze` is not
//! installed, unless `VETO_REQUIRE_GATEWAYS=1` (then they fail).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::{
    eventually, find_executable, free_port, free_udp_port, make_certs, replace_in_config,
    require_gateway, tls_args, veto_bin, Veto, ADMIN_TOKEN,
};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn unit_text() -> String {
    std::fs::read_to_string(deploy("systemd/veto.service")).unwrap()
}

/// The unit with its `ExecStart` binary pointed at the veto under test.
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let text = replace_in_config(
        &unit_text(),
        "ExecStart=/usr/local/bin/veto ",
        &format!("ExecStart={} ", veto_bin()),
    );
    let path = dir.join("veto.service");
    std::fs::write(&path, text).unwrap();
    path
}

/// The value of every `key=` line of the unit, continuation lines joined.
fn directives(unit: &str, key: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn systemd_verifies_the_unit_and_rates_it_well_sandboxed() {
    let Some(analyze) = require_gateway("systemd-analyze", find_executable("systemd-analyze"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify:\n{said}");
    // systemd reports a directive it cannot parse, and goes on: any word
    // about the unit is a fault.
    assert!(
        !said.contains("veto.service"),
        "systemd-analyze verify:\n{said}"
    );

    // Exposure 0.0 (locked down) to 10.0 (none); the threshold is in tenths.
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above 2.0:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Overall exposure level"), "{said}");
}

#[test]
fn the_unit_runs_as_its_own_user_with_a_read_only_system() {
    let unit = unit_text();
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "veto"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(
            directives(&unit, key),
            vec![value.to_owned()],
            "{key}= in veto.service"
        );
    }
}

#[test]
fn the_units_command_line_starts_a_node_with_the_example_config() {
    // The flags it uses exist.
    let help = Command::new(veto_bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let unit = unit_text();
    let exec = directives(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "{exec:?}");
    let words: Vec<&str> = exec[0].split(' ').collect();
    assert_eq!(words[..2], ["/usr/local/bin/veto", "serve"]);
    for flag in words.iter().filter(|w| w.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} <")),
            "veto serve has no {flag}"
        );
    }

    // What systemd would hand it: credentials and a state directory.
    let root = tempfile::tempdir().unwrap();
    let creds = root.path().join("credentials");
    let state = root.path().join("state");
    std::fs::create_dir_all(&creds).unwrap();
    let certs = root.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certs(&certs, &["us-east", "eu-west"]);
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("us-east.pem", "node.pem"),
        ("us-east.key", "node.key"),
    ] {
        std::fs::copy(certs.join(from), creds.join(to)).unwrap();
    }
    std::fs::write(creds.join("admin-token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    for cred in directives(&unit, "LoadCredential") {
        let (id, _) = cred.split_once(':').unwrap();
        if id != "veto.toml" {
            assert!(creds.join(id).is_file(), "credential {id} not provided");
        }
    }

    // The example config, on loopback, peered with a second node.
    let peer_port = free_udp_port();
    let (http, gossip) = (free_port(), free_udp_port());
    let config = std::fs::read_to_string(deploy("systemd/veto.toml")).unwrap();
    let config = replace_in_config(
        &config,
        r#"listen = "10.0.1.10:7400""#,
        &format!(r#"listen = "127.0.0.1:{http}""#),
    );
    let config = replace_in_config(
        &config,
        r#"gossip_listen = "0.0.0.0:7401""#,
        &format!(r#"gossip_listen = "127.0.0.1:{gossip}""#),
    );
    let config = replace_in_config(
        &config,
        r#"peers = ["eu-west.veto.internal:7401", "ap-south.veto.internal:7401"]"#,
        &format!(r#"peers = ["127.0.0.1:{peer_port}"]"#),
    );
    std::fs::write(creds.join("veto.toml"), config).unwrap();

    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| {
            w.replace("${CREDENTIALS_DIRECTORY}", &creds.display().to_string())
                .replace("${STATE_DIRECTORY}", &state.display().to_string())
        })
        .collect();
    let mut cmd = Command::new(veto_bin());
    cmd.args(&args).env_remove("VETO_ADMIN_TOKEN");
    for env in directives(&unit, "Environment") {
        let (k, v) = env.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Veto {
        child,
        url: format!("http://127.0.0.1:{http}"),
        data_dir: state.clone(),
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        args: Vec::new(),
        env: Vec::new(),
    };
    node.wait_ready(Duration::from_secs(30));
    let status = node.status();
    assert_eq!(status["node"]["name"], "us-east");
    assert_eq!(status["node"]["region"], "us-east");
    assert!(
        std::fs::read_dir(&state).unwrap().next().is_some(),
        "the node keeps nothing in its state directory"
    );

    let peer_dir = root.path().join("eu-west");
    // It lists the unit's node back: a node accepts a dial-in only from a
    // peer it lists.
    let mut peer_args = tls_args(&certs, "eu-west", peer_port, "eu-west");
    peer_args.extend(["--peer".into(), format!("127.0.0.1:{gossip}")]);
    let peer = Veto::start_with(&peer_dir, &peer_args);
    // The admin token from its credential file authorizes writes.
    node.revoke(json!({"scope": "token", "iss": "https://idp", "jti": "from-systemd"}));
    eventually(Duration::from_secs(30), "replicated to eu-west", || {
        peer.revoked(&[("iss", "https://idp"), ("jti", "from-systemd")])
    });
}
