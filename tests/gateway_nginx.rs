//! Real nginx enforcing veto with `auth_request`, configured by
//! `examples/nginx/veto.conf`, in front of a tiny upstream.
//!
//! Skipped with a message when nginx is not installed, unless
//! `VETO_REQUIRE_GATEWAYS=1` (then it fails): see `scripts/install-test-deps.sh`.

mod support;

use std::path::Path;

use serde_json::json;
use support::{
    gateway_client, get_with_bearer, jwt, nginx_bin, now, require_gateway, Nginx, Upstream, Veto,
};

const ISS: &str = "https://idp.example";

fn token(sub: &str, jti: &str, iat: u64) -> String {
    jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": ISS, "sub": sub, "jti": jti, "iat": iat, "exp": iat + 3600}),
    )
}

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

/// A refused request: 401 with veto's challenge, and the upstream never saw it.
fn assert_refused(nginx: &Nginx, upstream: &Upstream, token: Option<&str>, why: &str) {
    let before = upstream.hits();
    let r = get_with_bearer(&gateway_client(), &nginx.url("/api/orders"), token);
    assert_eq!(r.status(), 401, "{why}");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let challenge = challenge.unwrap_or_else(|| panic!("{why}: no WWW-Authenticate passed on"));
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{why}: {challenge}"
    );
    assert_eq!(upstream.hits(), before, "{why}: the upstream was reached");
}

fn assert_allowed(nginx: &Nginx, upstream: &Upstream, token: &str, why: &str) {
    let before = upstream.hits();
    let r = get_with_bearer(
        &gateway_client(),
        &nginx.url("/api/orders?page=2"),
        Some(token),
    );
    assert_eq!(r.status(), 200, "{why}");
    assert_eq!(
        r.text().unwrap(),
        "upstream GET /api/orders?page=2 body=0 authorization=true\n",
        "{why}"
    );
    assert_eq!(upstream.hits(), before + 1, "{why}");
}

#[test]
fn nginx_refuses_revoked_tokens_and_passes_clean_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some((veto, upstream, nginx)) = stack(dir.path()) else {
        return;
    };
    let t = now();
    let alice = token("alice", "alice-1", t - 60);
    let bob = token("bob", "bob-1", t - 60);
    let leaked = token("bob", "bob-leaked", t - 60);

    assert_allowed(&nginx, &upstream, &leaked, "not yet revoked");
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "bob-leaked", "reason": "leaked"}));
    assert_refused(&nginx, &upstream, Some(&leaked), "revoked at token scope");
    assert_allowed(&nginx, &upstream, &bob, "another token of the same subject");
    assert_allowed(&nginx, &upstream, &alice, "another subject");

    // What veto cannot judge is refused too.
    assert_refused(&nginx, &upstream, None, "no Authorization header");
    assert_refused(
        &nginx,
        &upstream,
        Some("eyJhbGciOi.!!!.x"),
        "a malformed JWT",
    );

    // A request body reaches the upstream although the check never carries it.
    let before = upstream.hits();
    let r = gateway_client()
        .post(nginx.url("/api/orders"))
        .bearer_auth(&alice)
        .body(vec![b'x'; 4096])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().unwrap(),
        "upstream POST /api/orders body=4096 authorization=true\n"
    );
    assert_eq!(upstream.hits(), before + 1);

    // Subject scope: every token alice got before the cutoff is refused from
    // then on, on every request; one issued after it passes.
    veto.revoke(json!({"scope": "subject", "iss": ISS, "sub": "alice", "before": t, "reason": "password reset"}));
    for _ in 0..3 {
        assert_refused(
            &nginx,
            &upstream,
            Some(&alice),
            "alice's old token after a subject revocation",
        );
    }
    let old_no_jti = jwt(
        json!({"alg": "RS256"}),
        json!({"iss": ISS, "sub": "alice", "iat": t - 5}),
    );
    assert_refused(
        &nginx,
        &upstream,
        Some(&old_no_jti),
        "any old token of alice",
    );
    assert_allowed(
        &nginx,
        &upstream,
        &token("alice", "alice-2", t + 1),
        "alice's token issued after the cutoff",
    );
    assert_allowed(
        &nginx,
        &upstream,
        &bob,
        "bob is untouched by alice's revocation",
    );
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
    assert_allowed(&nginx, &upstream, &clean, "veto up");

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
    assert_allowed(&nginx, &upstream, &clean, "veto back");
    assert_refused(
        &nginx,
        &upstream,
        Some(&leaked),
        "revoked before the outage",
    );
    drop(veto);
}
