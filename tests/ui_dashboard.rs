//! The operator dashboard (`/ui`) in a real browser: a three-node cluster on
//! loopback, and headless Chromium driven by Selenium
//! (`tests/python/ui_dashboard.py`) through the page, as an operator would
//! use it: the cluster connected, propagation latency, a revoke through the
//! form, the audit search, and the receipt when the node serves receipts.
//!
//! Skipped with a message when Chromium, chromedriver or Python's Selenium is
//! missing, unless `VETO_REQUIRE_GATEWAYS=1` (then it fails): see
//! `scripts/install-test-deps.sh`. `VETO_UI_SCREENSHOT=PATH` saves a
//! screenshot of the page at the end (`docs/dashboard.png` was made so).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::mesh::{wait_connected, Mesh};
use support::{eventually, python, python_runs, require_gateway, Veto, ADMIN_TOKEN};

const NAMES: [&str; 3] = ["us-east", "eu-west", "ap-south"];
const ISS: &str = "https://idp.example";

/// `$var` if set, else `default`, when that file exists.
fn program(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.is_file().then_some(path)
}

/// The dashboard's files need no token and carry their type, the policy and
/// revalidation.
fn assets_are_served_with_a_strict_policy(node: &Veto) {
    for (path, ty) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let r = node.get(path);
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(header("content-type").starts_with(ty), "{path}");
        assert!(
            header("content-security-policy").starts_with("default-src 'self'"),
            "{path}"
        );
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
    let missing = node.get("/ui/nothing.js");
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().unwrap();
    assert_eq!(body["error"], "not_found");
}

#[test]
fn an_operator_sees_the_cluster_revokes_and_finds_the_record_in_the_dashboard() {
    let chromium = require_gateway("Chromium", program("VETO_CHROMIUM", "/usr/bin/chromium"));
    let Some(chromium) = chromium else { return };
    let driver = program("VETO_CHROMEDRIVER", "/usr/bin/chromedriver");
    let Some(driver) = require_gateway("chromedriver", driver) else {
        return;
    };
    let selenium = python_runs("import selenium.webdriver");
    if require_gateway("Python's Selenium", selenium.then_some(())).is_none() {
        return;
    }

    let mesh = Mesh::new(&NAMES);
    let nodes: Vec<Veto> = (0..NAMES.len()).map(|i| mesh.start(i)).collect();
    let refs: Vec<&Veto> = nodes.iter().collect();
    wait_connected(&refs, 2);
    let regions: Vec<String> = NAMES.iter().map(|n| format!("region-{n}")).collect();
    assets_are_served_with_a_strict_policy(&nodes[0]);

    // Records made in the other two regions reach us-east, so that its
    // propagation latency has something to show for each.
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let jti = format!("seed-{}", NAMES[i]);
        node.revoke(json!({"scope": "token", "iss": ISS, "jti": jti, "reason": "rotated"}));
        eventually(
            Duration::from_secs(30),
            "the seed record reaches us-east",
            || nodes[0].revoked(&[("iss", ISS), ("jti", &jti)]),
        );
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/ui_dashboard.py");
    let out = Command::new(python())
        .arg(script)
        .args([nodes[0].url.as_str(), ADMIN_TOKEN])
        .args(["--regions", &regions.join(",")])
        .args(["--latency-from", &regions[1..].join(",")])
        .env("VETO_CHROMIUM", &chromium)
        .env("VETO_CHROMEDRIVER", &driver)
        .output()
        .expect("spawn python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "ui_dashboard.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("ok: no console error"), "{stdout}");
}
