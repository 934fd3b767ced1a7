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
