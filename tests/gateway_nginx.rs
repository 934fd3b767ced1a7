//! Real nginx enforcing veto with `auth_request`, configured by
//! `examples/nginx/veto.conf`, in front of a tiny upstream.
//!
//! Skipped with a message when nginx is not installed, unless
//! `VETO_REQUIRE_GATEWAYS=1` (then it fails): see `scripts/install-test-deps.sh`.

mod support;

use std::path::Path;

use serde_json::json;
use support::enforcement::{
    assert_allowed, assert_refused, refuses_revoked_tokens_and_passes_clean_ones, token, Gateway,
    ISS,
};
use support::{
    gateway_client, get_with_bearer, nginx_bin, now, require_gateway, Nginx, Upstream, Veto,
};

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
