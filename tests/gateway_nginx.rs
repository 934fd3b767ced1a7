//! Real nginx enforcing veto with `auth_request`, configured by
//! `examples/nginx/veto.conf` (and `veto-https.conf`, for a veto serving
//! HTTPS), in front of a tiny upstream.
//!
//! Skipped with a message when nginx is not installed, unless
//! `VETO_REQUIRE_GATEWAYS=1` (then it fails): see `scripts/install-test-deps.sh`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::enforcement::{
    assert_allowed, assert_refused, refuses_revoked_tokens_and_passes_clean_ones, token, Gateway,
    ISS,
};
use support::{
    gateway_client, get_with_bearer, make_certs, nginx_bin, now, require_gateway, Nginx, Upstream,
    Veto,
};

/// The name in veto's HTTPS certificate, as `veto-https.conf` expects it.
const VETO_NAME: &str = "veto.internal";

fn veto_port(veto: &Veto) -> u16 {
    veto.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// veto, an upstream and nginx in front of it; `None` when nginx is missing.
fn stack(dir: &Path) -> Option<(Veto, Upstream, Nginx)> {
    let bin = require_gateway("nginx", nginx_bin())?;
    let veto = Veto::start(&dir.join("veto"), &[]);
    let upstream = Upstream::start();
    let nginx = Nginx::start(&bin, &dir.join("nginx"), veto_port(&veto), upstream.port);
    Some((veto, upstream, nginx))
}

/// nginx answers a refusal with its own 401 page, keeping veto's challenge.
fn gateway(nginx: &Nginx) -> Gateway {
    Gateway {
        base: nginx.url(""),
        passes_error_body: false,
    }
}

#[test]
fn nginx_refuses_revoked_tokens_and_passes_clean_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some((veto, upstream, nginx)) = stack(dir.path()) else {
        return;
    };
    refuses_revoked_tokens_and_passes_clean_ones(&veto, &upstream, &gateway(&nginx));
}

#[test]
fn nginx_fails_closed_while_veto_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut veto, upstream, nginx)) = stack(dir.path()) else {
        return;
    };
    let t = now();
    let clean = token("carol", "carol-1", t - 60);
    let leaked = token("carol", "carol-leaked", t - 60);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "carol-leaked"}));
    assert_allowed(&gateway(&nginx), &upstream, &clean, "veto up");

    veto.stop();
    let hits = upstream.hits();
    for tok in [&clean, &leaked] {
        let r = get_with_bearer(&gateway_client(), &nginx.url("/api/orders"), Some(tok));
        assert!(
            r.status().is_server_error(),
            "veto down must fail closed, got {}",
            r.status()
        );
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "nothing reached the upstream while veto was down"
    );
    assert!(
        nginx.error_log().contains("connect() failed"),
        "nginx logged why:\n{}",
        nginx.error_log()
    );

    // Back on the same address: nginx recovers by itself, and the revocation
    // made before the outage still holds.
    let veto = veto.restart();
    assert_allowed(&gateway(&nginx), &upstream, &clean, "veto back");
    assert_refused(
        &gateway(&nginx),
        &upstream,
        Some(&leaked),
        "revoked before the outage",
    );
    drop(veto);
}

/// veto serving HTTPS with a certificate for [`VETO_NAME`] from a CA made by
/// `veto cert` in `dir/certs`, reached by that name; answers the CA file.
fn https_veto(dir: &Path) -> (Veto, PathBuf) {
    let certs = dir.join("certs");
    make_certs(&certs, &[VETO_NAME]);
    let file = |ext: &str| {
        certs
            .join(format!("{VETO_NAME}.{ext}"))
            .display()
            .to_string()
    };
    let args = [
        "--api-tls-cert".into(),
        file("pem"),
        "--api-tls-key".into(),
        file("key"),
    ];
    let mut veto = Veto::launch_with(&dir.join("veto"), &args);
    let port = veto.port();
    veto.url = format!("https://{VETO_NAME}:{port}");
    let ca = certs.join("ca.pem");
    let pem = std::fs::read(&ca).unwrap();
    veto.http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve(VETO_NAME, SocketAddr::from(([127, 0, 0, 1], port)))
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    veto.wait_ready(Duration::from_secs(30));
    (veto, ca)
}

/// A real nginx running `examples/nginx/veto-https.conf`, trusting `ca`, set
/// up as [`Nginx::start`] sets up `veto.conf`.
fn nginx_https(bin: &Path, dir: &Path, veto_port: u16, upstream_port: u16, ca: &Path) -> Nginx {
    Nginx::start_example(
        bin,
        dir,
        "veto-https.conf",
        veto_port,
        upstream_port,
        &[("/etc/veto/ca.pem", ca.display().to_string())],
    )
}

/// `veto-https.conf`: nginx checks veto's certificate and asks it over TLS;
/// a veto whose certificate nginx does not trust counts as down.
#[test]
fn nginx_asks_veto_over_https() {
    let Some(bin) = require_gateway("nginx", nginx_bin()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (veto, ca) = https_veto(dir.path());
    let upstream = Upstream::start();
    let nginx = nginx_https(
        &bin,
        &dir.path().join("nginx"),
        veto.port(),
        upstream.port,
        &ca,
    );
    refuses_revoked_tokens_and_passes_clean_ones(&veto, &upstream, &gateway(&nginx));

    let other = dir.path().join("other");
    make_certs(&other, &[]);
    let untrusting = nginx_https(
        &bin,
        &dir.path().join("nginx-other"),
        veto.port(),
        upstream.port,
        &other.join("ca.pem"),
    );
    let hits = upstream.hits();
    let clean = token("frank", "frank-1", now() - 60);
    let r = get_with_bearer(
        &gateway_client(),
        &untrusting.url("/api/orders"),
        Some(&clean),
    );
    assert_eq!(r.status(), 500, "an untrusted veto must fail closed");
    assert_eq!(upstream.hits(), hits, "the upstream was reached");
    assert!(
        untrusting
            .error_log()
            .contains("upstream SSL certificate verify error"),
        "nginx logged why:\n{}",
        untrusting.error_log()
    );
}
