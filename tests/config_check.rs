//! `veto config check FILE` names every bad key of a config file, and
//! `veto serve --config` refuses such a file at start, naming the key.

mod support;

use std::process::Command;

use support::veto_bin;

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veto.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(veto_bin())
        .args(["config", "check"])
        .arg(&path)
        .env_remove("VETO_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_file_is_ok() {
    let (ok, stdout, stderr) =
        check("listen = \"127.0.0.1:7499\"\ngc_grace = 60\nregion = \"eu-west\"\n");
    assert!(ok, "{stderr}");
    assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");
}

#[test]
fn grpc_listen_takes_an_address() {
    let (ok, _, stderr) = check("grpc_listen = \"127.0.0.1:7402\"\n");
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = check("grpc_listen = 7402\n");
    assert!(!ok);
    assert!(stderr.contains("`grpc_listen`: invalid type"), "{stderr}");
}

#[test]
fn every_bad_key_is_named_at_once() {
    let (ok, _, stderr) =
        check("gc_grace = \"1h\"\ncolour = \"blue\"\nlisten = \"not an address\"\n");
    assert!(!ok);
    assert!(stderr.contains("`gc_grace`: invalid type"), "{stderr}");
    assert!(stderr.contains("`colour`: unknown field"), "{stderr}");
    assert!(stderr.contains("`listen`:"), "{stderr}");
    assert!(stderr.contains("3 errors"), "{stderr}");
}

#[test]
fn settings_that_only_make_sense_together_are_checked_too() {
    let (ok, _, stderr) = check("peers = [\"a.internal:7401\"]\n");
    assert!(!ok);
    assert!(stderr.contains("peers need mutual TLS"), "{stderr}");
    let (ok, _, stderr) = check("watch_buffer = 0\n");
    assert!(!ok);
    assert!(
        stderr.contains("`watch_buffer` must be positive"),
        "{stderr}"
    );
    let (ok, _, stderr) = check("not = [valid toml\n");
    assert!(!ok);
    assert!(stderr.contains("not TOML"), "{stderr}");
}

#[test]
fn a_missing_file_is_refused() {
    let out = Command::new(veto_bin())
        .args(["config", "check", "/nonexistent/veto.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn serve_refuses_a_file_with_a_bad_key_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veto.toml");
    std::fs::write(&path, "gc_intervall = 5\n").unwrap();
    let out = Command::new(veto_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gc_intervall"), "{stderr}");
}
