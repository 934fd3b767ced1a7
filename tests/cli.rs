//! The command-line tools against a real node: `veto revoke` sends the same
//! request type the node decodes, and a refused one ends in one clear line.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{veto_bin, Veto, ADMIN_TOKEN};

fn veto(args: &[&str]) -> std::process::Output {
    Command::new(veto_bin())
        .args(args)
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap()
}

#[test]
fn veto_revoke_stores_what_it_is_given_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let node = Veto::start(dir.path(), &[]);
    let out = veto(&[
        "revoke",
        "--node",
        &node.url,
        "--scope",
        "subject",
        "--iss",
        "https://idp",
        "--sub",
        "carol",
        "--before",
        "1700000000",
        "--reason",
        "left the company",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["scope"], "subject");
    assert_eq!(record["sub"], "carol");
    assert_eq!(record["before"], 1_700_000_000);
    assert_eq!(record["reason"], "left the company");
    assert!(node.revoked(&[
        ("iss", "https://idp"),
        ("sub", "carol"),
        ("iat", "1699999999")
    ]));
    assert!(!node.revoked(&[
        ("iss", "https://idp"),
        ("sub", "carol"),
        ("iat", "1700000000")
    ]));

    // A key that does not belong to the scope: refused, nothing stored.
    let out = veto(&[
        "revoke", "--node", &node.url, "--scope", "token", "--sid", "s-1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400") && err.contains("`sid`"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(node.status()["revocations"], 1);
}

/// What the commands print on success: the node's answer as pretty JSON, keys
/// in alphabetical order.
fn pretty(v: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap())
}

#[track_caller]
fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The one line a failed command prints, after checking it failed with 1.
#[track_caller]
fn error_of(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
    err.trim().to_owned()
}

#[test]
fn veto_revoke_and_check_print_the_nodes_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = Veto::start(dir.path(), &[]);
    let url = node.url.as_str();
    let out = veto(&[
        "revoke",
        "--node",
        url,
        "--scope",
        "token",
        "--iss",
        "https://idp",
        "--jti",
        "j-1",
    ]);
    let printed = stdout_of(&out);
    let audit = node.admin_get("/v1/revocations").json::<Value>().unwrap();
    assert_eq!(printed, pretty(&audit["records"][0]));

    let check = |args: &[&str], query: &str| {
        let mut all = vec!["check", "--node", url];
        all.extend_from_slice(args);
        let printed = stdout_of(&veto(&all));
        assert_eq!(
            printed,
            pretty(&node.get_json(&format!("/v1/check?{query}")))
        );
        serde_json::from_str::<Value>(&printed).unwrap()
    };
    let hit = check(
        &["--iss", "https://idp", "--jti", "j-1"],
        "iss=https://idp&jti=j-1",
    );
    assert_eq!(hit["revoked"], true);
    assert_eq!(hit["scope"], "token");
    let miss = check(&["--jti", "j-2", "--iat", "5"], "jti=j-2&iat=5");
    assert_eq!(miss, serde_json::json!({"revoked": false}));
    let jwt = support::jwt(
        serde_json::json!({"alg": "none"}),
        serde_json::json!({"iss": "https://idp", "jti": "j-1"}),
    );
    let by_token = check(&["--token", &jwt], &format!("token={jwt}"));
    assert_eq!(by_token["revoked"], true);

    // Refused lookups: by the node, or before anything is sent.
    let err = error_of(&veto(&["check", "--node", url, "--token", "a.b.c"]));
    assert!(
        err.starts_with("veto: 400 Bad Request: malformed JWT"),
        "{err}"
    );
    let err = error_of(&veto(&["check", "--node", url, "--iat", "5"]));
    assert!(
        err.starts_with("veto: 400 Bad Request: nothing to check"),
        "{err}"
    );
    let err = error_of(&veto(&["check", "--node", url]));
    assert!(err.contains("give at least one of"), "{err}");
    let err = error_of(&veto(&[
        "check", "--node", url, "--token", "t", "--jti", "j",
    ]));
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn veto_status_and_peers_print_the_nodes_answers_and_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    support::make_certs(certs.path(), &["near"]);
    let gossip = support::free_udp_port();
    let node = Veto::start_with(
        dir.path(),
        &support::tls_args(certs.path(), "near", gossip, "us-east"),
    );
    let url = node.url.as_str();
    let printed = stdout_of(&veto(&["status", "--node", url]));
    assert_eq!(printed, pretty(&node.get_json("/v1/status")));

    let added = stdout_of(&veto(&[
        "peers",
        "add",
        "--node",
        url,
        "127.0.0.1:9",
        "--name",
        "far",
    ]));
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["addr"], "127.0.0.1:9");
    // Listed under the name given; `name` waits for a certificate to prove it.
    assert_eq!(added["listed_as"], "far");
    assert_eq!(added["name"], Value::Null);
    let listed = stdout_of(&veto(&["peers", "list", "--node", url]));
    let expected = node.admin_get("/v1/peers").json::<Value>().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap()["peers"][0]["addr"],
        expected["peers"][0]["addr"]
    );
    let removed = stdout_of(&veto(&["peers", "remove", "--node", url, "far"]));
    assert_eq!(removed, "No Content\n");

    // A certificate revoked by name, then by fingerprint: a `peer` record.
    let by_name = stdout_of(&veto(&[
        "peers",
        "revoke-cert",
        "--node",
        url,
        "far",
        "--reason",
        "retired",
    ]));
    let by_name: Value = serde_json::from_str(&by_name).unwrap();
    assert_eq!(
        (&by_name["scope"], &by_name["name"], &by_name["reason"]),
        (
            &Value::from("peer"),
            &Value::from("far"),
            &Value::from("retired")
        )
    );
    let sha = "0123456789abcdef".repeat(4);
    let by_sha = stdout_of(&veto(&["peers", "revoke-cert", "--node", url, &sha]));
    let by_sha: Value = serde_json::from_str(&by_sha).unwrap();
    assert_eq!(by_sha["cert_sha256"], sha.as_str());
    assert_eq!(by_sha["name"], Value::Null);
    let long = "n".repeat(256);
    let err = error_of(&veto(&["peers", "revoke-cert", "--node", url, &long]));
    assert!(
        err.starts_with("veto: 400 Bad Request: ") && err.contains("limit is 255"),
        "{err}"
    );

    // The node's refusals, in one line each: its status and its message.
    let err = error_of(&veto(&["peers", "remove", "--node", url, "far"]));
    assert!(err.starts_with("veto: 404 Not Found: "), "{err}");
    let wrong = Command::new(veto_bin())
        .args(["peers", "remove", "--node", url, "far"])
        .env("VETO_ADMIN_TOKEN", "wrong-token-0123456789")
        .output()
        .unwrap();
    let err = error_of(&wrong);
    assert!(err.starts_with("veto: 401 Unauthorized: "), "{err}");
    let none = Command::new(veto_bin())
        .args(["peers", "add", "--node", url, "127.0.0.1:9"])
        .env_remove("VETO_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(error_of(&none).contains("needs the admin token"));

    // A node that does not answer, or no node at all.
    let err = error_of(&veto(&["status", "--node", "nota-url"]));
    assert_eq!(
        err,
        "veto: cannot reach the node at nota-url: not an http:// or https:// URL"
    );
    let gone = format!("http://127.0.0.1:{}", support::free_port());
    let err = error_of(&veto(&["status", "--node", &gone]));
    assert!(
        err.starts_with(&format!("veto: cannot reach the node at {gone}: ")),
        "{err}"
    );
}

#[test]
fn veto_cert_node_takes_its_validity_in_days_and_prints_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    stdout_of(&veto(&["cert", "ca", "--out", &d]));
    let node = |extra: &[&str]| {
        let mut args = vec![
            "cert", "node", "--ca-dir", &d, "--name", "n1", "--out", &d, "--force",
        ];
        args.extend_from_slice(extra);
        veto(&args)
    };
    let printed = stdout_of(&node(&["--days", "30"]));
    let sha = printed
        .lines()
        .find_map(|l| l.strip_prefix("sha256 "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "{printed}"
    );
    assert!(printed.contains("valid 30 days"), "{printed}");
    // The fingerprint is the certificate file's.
    let pem = std::fs::read_to_string(dir.path().join("n1.pem")).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(sha, hex::encode(veto_transport::tls::cert_sha256(&der)));
    // The default is 90 days; 0 and more than ten years are refused by clap.
    assert!(stdout_of(&node(&[])).contains("valid 90 days"));
    for bad in ["0", "3651", "-1", "many"] {
        let flag = format!("--days={bad}");
        let out = node(&[&flag]);
        assert_eq!(out.status.code(), Some(2), "--days {bad}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--days"), "{err}");
    }
}
