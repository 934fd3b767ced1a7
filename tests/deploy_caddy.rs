//! Real Caddy enforcing veto with `forward_auth`, configured by
//! `deploy/caddy/Caddyfile`, in front of a tiny upstream.
//!
//! Skipped with a message when caddy is not installed, unless
//! `VETO_REQUIRE_GATEWAYS=1` (then it fails): see `scripts/install-test-deps.sh`.

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
    find_executable, free_port, gateway_client, get_with_bearer, now, replace_in_config,
    require_gateway, Upstream, Veto,
};

/// The caddy binary: `VETO_CADDY_BIN`, else `caddy` on PATH or in sbin.
fn caddy_bin() -> Option<PathBuf> {
    match std::env::var_os("VETO_CADDY_BIN") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => find_executable("caddy"),
    }
}

fn caddyfile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/caddy/Caddyfile")
}

/// A real Caddy running the example Caddyfile with its addresses pointed at
/// a test's veto and upstream, on a free loopback port, with its home in `dir`.
struct Caddy {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Caddy {
    fn start(bin: &Path, dir: &Path, veto_port: u16, upstream_port: u16) -> Caddy {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let text = std::fs::read_to_string(caddyfile()).unwrap();
        let text = replace_in_config(
            &text,
            "forward_auth 127.0.0.1:7400",
            &format!("forward_auth 127.0.0.1:{veto_port}"),
        );
        let text = replace_in_config(
            &text,
            "reverse_proxy 127.0.0.1:8080",
            &format!("reverse_proxy 127.0.0.1:{upstream_port}"),
        );
        let text = replace_in_config(
            &text,
            "http://127.0.0.1:8000 {",
            &format!("http://127.0.0.1:{port} {{"),
        );
        let conf = dir.join("Caddyfile");
        std::fs::write(&conf, text).unwrap();
        let log = dir.join("caddy.log");
        let child = Command::new(bin)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf)
            // Caddy keeps its state under the home and XDG directories.
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn caddy");
        let mut caddy = Caddy { child, port, log };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = caddy.child.try_wait().unwrap() {
                panic!("caddy exited with {status}:\n{}", caddy.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "caddy not listening on {port}:\n{}",
                caddy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        caddy
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// veto, an upstream and Caddy in front of it; `None` when caddy is missing.
fn stack(dir: &Path) -> Option<(Veto, Upstream, Caddy)> {
    let bin = require_gateway("caddy", caddy_bin())?;
    let veto = Veto::start(&dir.join("veto"), &[]);
    let upstream = Upstream::start();
    let caddy = Caddy::start(&bin, &dir.join("caddy"), veto.port(), upstream.port);
    Some((veto, upstream, caddy))
}

/// Caddy hands veto's 401 to the client whole: status, challenge and body.
fn gateway(caddy: &Caddy) -> Gateway {
    Gateway {
        base: caddy.url(""),
        passes_error_body: true,
    }
}

#[test]
fn caddy_refuses_revoked_tokens_and_passes_clean_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some((veto, upstream, caddy)) = stack(dir.path()) else {
        return;
    };
    refuses_revoked_tokens_and_passes_clean_ones(&veto, &upstream, &gateway(&caddy));
}

#[test]
fn caddy_refuses_a_request_with_two_authorization_headers() {
    let dir = tempfile::tempdir().unwrap();
    let Some((veto, upstream, caddy)) = stack(dir.path()) else {
        return;
    };
    let t = now();
    let clean = token("dave", "dave-1", t - 60);
    let leaked = token("dave", "dave-leaked", t - 60);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "dave-leaked"}));
    let hits = upstream.hits();
    let r = gateway_client()
        .get(caddy.url("/api/orders"))
        .header("authorization", format!("Bearer {clean}"))
        .header("authorization", format!("Bearer {leaked}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(upstream.hits(), hits, "the upstream was reached");
}

#[test]
fn caddy_fails_closed_while_veto_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut veto, upstream, caddy)) = stack(dir.path()) else {
        return;
    };
    let t = now();
    let clean = token("carol", "carol-1", t - 60);
    let leaked = token("carol", "carol-leaked", t - 60);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "carol-leaked"}));
    assert_allowed(&gateway(&caddy), &upstream, &clean, "veto up");

    veto.stop();
    let hits = upstream.hits();
    for tok in [Some(&clean), Some(&leaked), None] {
        let r = get_with_bearer(
            &gateway_client(),
            &caddy.url("/api/orders"),
            tok.map(|t| t.as_str()),
        );
        assert_eq!(
            r.status(),
            502,
            "veto down must fail closed:\n{}",
            caddy.log()
        );
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "nothing reached the upstream while veto was down"
    );

    // Back on the same address: Caddy recovers by itself, and the revocation
    // made before the outage still holds.
    let veto = veto.restart();
    assert_allowed(&gateway(&caddy), &upstream, &clean, "veto back");
    assert_refused(
        &gateway(&caddy),
        &upstream,
        Some(&leaked),
        "revoked before the outage",
    );
    drop(veto);
}
