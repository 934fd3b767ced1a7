//! The enforcement scenario every gateway in front of veto must pass, whatever
//! the gateway: nginx `auth_request` and Envoy `ext_authz` run the same checks
//! against their own base URL.

use serde_json::json;

use super::{gateway_client, get_with_bearer, jwt, now, Upstream, Veto};

/// The issuer of every token in the scenario.
pub const ISS: &str = "https://idp.example";

/// An unsigned JWT of `sub` with this `jti`, issued at `iat`, valid an hour.
pub fn token(sub: &str, jti: &str, iat: u64) -> String {
    jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": ISS, "sub": sub, "jti": jti, "iat": iat, "exp": iat + 3600}),
    )
}

/// A gateway under test: its base URL, and whether its 401 carries veto's JSON
/// error body (Envoy passes it on; nginx replaces it with its own page).
pub struct Gateway {
    pub base: String,
    pub passes_error_body: bool,
}

/// A refused request: 401 with veto's challenge, and the upstream never saw it.
pub fn assert_refused(gw: &Gateway, upstream: &Upstream, token: Option<&str>, why: &str) {
    let before = upstream.hits();
    let r = get_with_bearer(&gateway_client(), &format!("{}/api/orders", gw.base), token);
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
    if gw.passes_error_body {
        let body: serde_json::Value = r.json().unwrap();
        assert_eq!(body["error"], "invalid_token", "{why}");
    }
    assert_eq!(upstream.hits(), before, "{why}: the upstream was reached");
}

/// An allowed request: it reaches the upstream with its query and its token.
pub fn assert_allowed(gw: &Gateway, upstream: &Upstream, token: &str, why: &str) {
    let before = upstream.hits();
    let r = get_with_bearer(
        &gateway_client(),
        &format!("{}/api/orders?page=2", gw.base),
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

/// Revoked tokens are refused and clean ones pass, at token and subject scope.
pub fn refuses_revoked_tokens_and_passes_clean_ones(
    veto: &Veto,
    upstream: &Upstream,
    gw: &Gateway,
) {
    let t = now();
    let alice = token("alice", "alice-1", t - 60);
    let bob = token("bob", "bob-1", t - 60);
    let leaked = token("bob", "bob-leaked", t - 60);

    assert_allowed(gw, upstream, &leaked, "not yet revoked");
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "bob-leaked", "reason": "leaked"}));
    assert_refused(gw, upstream, Some(&leaked), "revoked at token scope");
    assert_allowed(gw, upstream, &bob, "another token of the same subject");
    assert_allowed(gw, upstream, &alice, "another subject");

    // What veto cannot judge is refused too.
    assert_refused(gw, upstream, None, "no Authorization header");
    assert_refused(gw, upstream, Some("eyJhbGciOi.!!!.x"), "a malformed JWT");

    // A request body reaches the upstream although the check never carries it
    // (nginx's subrequest drops it; Envoy asks with the method but no body).
    let before = upstream.hits();
    let r = gateway_client()
        .post(format!("{}/api/orders", gw.base))
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
            gw,
            upstream,
            Some(&alice),
            "alice's old token after a subject revocation",
        );
    }
    let old_no_jti = jwt(
        json!({"alg": "RS256"}),
        json!({"iss": ISS, "sub": "alice", "iat": t - 5}),
    );
    assert_refused(gw, upstream, Some(&old_no_jti), "any old token of alice");
    assert_allowed(
        gw,
        upstream,
        &token("alice", "alice-2", t + 1),
        "alice's token issued after the cutoff",
    );
    assert_allowed(gw, upstream, &bob, "bob is untouched by alice's revocation");
}
