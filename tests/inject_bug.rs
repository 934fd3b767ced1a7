//! The kill -9 test catches a node that answers before its write is durable.
//!
//! Built only with `--features inject-bugs`, which compiles in
//! `VETO_INJECT_BUG` (`.ci/run` runs it that way). The bug is veto-node's
//! `ack-before-durable`, the same code the simulator injects.
#![cfg(feature = "inject-bugs")]

mod support;

use serde_json::json;
use support::Veto;

const ATTEMPTS: usize = 20;

/// Revokes one token, kills the node with SIGKILL as soon as the 201 is in,
/// restarts it, and says whether the revocation survived. Each attempt's
/// token is new.
fn revoke_then_kill(veto: Veto, attempt: usize) -> (Veto, bool) {
    let mut veto = veto;
    let jti = format!("leaked-{attempt}");
    let r = veto.post_json("/v1/revocations", &json!({"scope": "token", "jti": jti}));
    assert_eq!(r.status(), 201);
    veto.kill9();
    let veto = veto.restart();
    let kept = veto.revoked(&[("jti", &jti)]);
    (veto, kept)
}

fn bug(name: &str) -> Vec<(String, String)> {
    vec![("VETO_INJECT_BUG".to_owned(), name.to_owned())]
}

#[test]
fn with_ack_before_durable_a_kill_right_after_the_201_loses_the_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start_env(dir.path(), &[], bug("ack-before-durable"));
    let mut lost = 0;
    for attempt in 0..ATTEMPTS {
        let (next, kept) = revoke_then_kill(veto, attempt);
        veto = next;
        lost += usize::from(!kept);
    }
    assert!(
        lost > 0,
        "the injected bug lost nothing in {ATTEMPTS} attempts: the test cannot tell a node that \
         acknowledges early from one that does not"
    );
}

#[test]
fn without_the_bug_the_same_build_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start_env(dir.path(), &[], Vec::new());
    for attempt in 0..ATTEMPTS {
        let (next, kept) = revoke_then_kill(veto, attempt);
        veto = next;
        assert!(
            kept,
            "attempt {attempt}: an acknowledged revocation was lost"
        );
    }
}

#[test]
fn an_unknown_bug_name_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(support::veto_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("VETO_INJECT_BUG", "ack-before-nothing")
        .env(
            "VETO_ADMIN_TOKEN",
            "a-token-that-is-long-enough-for-the-check",
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ack-before-nothing"), "{stderr}");
}
