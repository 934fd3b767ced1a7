//! Shared Signals: every RFC 8935 error, and that nothing is stored for a
//! refused SET.

mod common;
#[path = "events_support/mod.rs"]
mod support;

use axum::http::{header, Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use support::*;

fn revoke_t1() -> Value {
    set(
        "set-1",
        TOKEN_REVOKED,
        json!({"subject": {"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "t1"}}),
    )
}

/// Posts and asserts the error, and that nothing was stored.
async fn refused(app: &common::App, token: &str, err: &str) -> String {
    let a = post(app, token).await;
    let d = set_error(&a, StatusCode::BAD_REQUEST, err);
    assert_eq!(app.backend.len(), 0, "a refused SET stored something");
    d
}

/// A compact JWS from raw header and claims JSON and a signature.
fn raw_jws(header: &Value, claims: &Value, sig: &str) -> String {
    let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{sig}", enc(header), enc(claims))
}

#[tokio::test]
async fn a_bad_signature_fails_authentication() {
    let app = app();
    // The right kid, the wrong key: a forgery.
    let forged = sign_with(&rsa_forger(), Algorithm::RS256, Some(KID_A), &revoke_t1());
    let d = refused(&app, &forged, "authentication_failed").await;
    assert!(d.contains(ISS_A), "{d}");
    // No kid: every key of the transmitter is tried, none verifies.
    let forged = sign_with(&rsa_forger(), Algorithm::RS256, None, &revoke_t1());
    refused(&app, &forged, "authentication_failed").await;
    // A genuine SET whose payload was altered after signing.
    let genuine = sign(&revoke_t1());
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut altered = revoke_t1();
    altered["events"][TOKEN_REVOKED]["subject"]["jti"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(altered.to_string()),
        parts[2]
    );
    refused(&app, &tampered, "authentication_failed").await;
    // Transmitter B's key does not speak for transmitter A.
    let cross = sign_with(&ec_b(), Algorithm::ES256, None, &revoke_t1());
    refused(&app, &cross, "invalid_key").await;
}

#[tokio::test]
async fn keys_and_algorithms_that_do_not_fit_are_invalid_key() {
    let app = app();
    let d = refused(
        &app,
        &sign_with(
            &rsa_a(),
            Algorithm::RS256,
            Some("rotated-away"),
            &revoke_t1(),
        ),
        "invalid_key",
    )
    .await;
    assert!(d.contains("rotated-away"), "{d}");
    // An HMAC "signature" keyed with something public must never pass.
    let hs = sign_with(
        &EncodingKey::from_secret(b"public-knowledge"),
        Algorithm::HS256,
        Some(KID_A),
        &revoke_t1(),
    );
    refused(&app, &hs, "invalid_key").await;
    let unsigned = raw_jws(
        &json!({"alg": "none", "typ": "secevent+jwt"}),
        &revoke_t1(),
        "",
    );
    refused(&app, &unsigned, "invalid_key").await;
    // RS256 key, PS256 header: this key's JWK names RS256 only.
    let ps = sign_with(&rsa_a(), Algorithm::PS256, Some(KID_A), &revoke_t1());
    refused(&app, &ps, "invalid_key").await;
}

#[tokio::test]
async fn an_unknown_issuer_is_invalid_issuer() {
    let app = app();
    let mut claims = revoke_t1();
    claims["iss"] = json!("https://evil.example/");
    let d = refused(&app, &sign(&claims), "invalid_issuer").await;
    assert!(d.contains("evil.example"), "{d}");
}

#[tokio::test]
async fn a_wrong_or_missing_audience_is_invalid_audience() {
    let app = app();
    for aud in [json!("https://other-receiver.example"), json!(["a", "b"])] {
        let mut claims = revoke_t1();
        claims["aud"] = aud;
        refused(&app, &sign(&claims), "invalid_audience").await;
    }
    let mut claims = revoke_t1();
    claims.as_object_mut().unwrap().remove("aud");
    refused(&app, &sign(&claims), "invalid_audience").await;
}

#[tokio::test]
async fn malformed_sets_are_invalid_request() {
    let app = app();
    let key = rsa_a();
    let signed = |claims: &Value| sign_with(&key, Algorithm::RS256, Some(KID_A), claims);
    let without = |name: &str| {
        let mut c = revoke_t1();
        c.as_object_mut().unwrap().remove(name);
        c
    };
    let with = |name: &str, v: Value| {
        let mut c = revoke_t1();
        c[name] = v;
        c
    };
    let mut jwt_typ = jsonwebtoken::Header::new(Algorithm::RS256);
    jwt_typ.typ = Some("JWT".into());
    let cases: Vec<(String, &str)> = vec![
        ("not a jwt".into(), "not a compact JWS"),
        ("a.b.c.d.e".into(), "JWE"),
        ("%%%.e30.sig".into(), "base64url"),
        (
            jsonwebtoken::encode(&jwt_typ, &revoke_t1(), &key).unwrap(),
            "typ",
        ),
        (
            raw_jws(&json!({"alg": "RS256", "kid": KID_A}), &revoke_t1(), "x"),
            "typ",
        ),
        (
            raw_jws(
                &json!({"alg": "RS256", "typ": "secevent+jwt", "crit": ["exp"]}),
                &revoke_t1(),
                "x",
            ),
            "crit",
        ),
        (signed(&without("jti")), "jti"),
        (signed(&without("iat")), "iat"),
        (signed(&without("events")), "events"),
        (signed(&with("events", json!({}))), "events"),
        (signed(&with("events", json!([1]))), "events"),
        (signed(&with("jti", json!("j".repeat(513)))), "jti"),
        (
            signed(&set("s", TOKEN_REVOKED, json!("revoked"))),
            "not a JSON object",
        ),
        (signed(&set("s", TOKEN_REVOKED, json!({}))), "no subject"),
        (
            signed(&set(
                "s",
                TOKEN_REVOKED,
                json!({"subject": {"format": "phone_number", "phone_number": "+1"}}),
            )),
            "phone_number",
        ),
        (
            signed(&set(
                "s",
                TOKEN_REVOKED,
                json!({"subject": {"format": "email", "email": "a@b"}}),
            )),
            "does not name a token",
        ),
        (
            signed(&set(
                "s",
                SESSION_REVOKED,
                json!({"subject": {"format": "jwt_id", "iss": "i", "jti": "j"}}),
            )),
            "does not name a user",
        ),
        (
            signed(&set(
                "s",
                TOKENS_REVOKED,
                json!({"subject": {"format": "iss_sub", "iss": "i", "sub": "u".repeat(513)}}),
            )),
            "sub",
        ),
    ];
    for (token, needle) in cases {
        let d = refused(&app, &token, "invalid_request").await;
        assert!(d.contains(needle), "expected {needle:?} in {d:?}");
    }
}

#[tokio::test]
async fn a_set_mapping_one_bad_event_stores_none_of_them() {
    let app = app();
    let claims = json!({
        "iss": ISS_A, "aud": AUD, "iat": common::START, "jti": "half",
        "events": {
            TOKEN_REVOKED: {"subject": {"format": "jwt_id", "iss": "i", "jti": "ok"}},
            TOKENS_REVOKED: {"subject": {"format": "jwt_id", "iss": "i", "jti": "not-a-user"}},
        },
    });
    refused(&app, &sign(&claims), "invalid_request").await;
}

#[tokio::test]
async fn the_body_must_be_a_set_of_at_most_64_kib() {
    let app = app();
    let token = sign(&revoke_t1());
    let a = post_raw(&app, Some("application/json"), token.clone().into_bytes()).await;
    let d = set_error(&a, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(d.contains("application/secevent+jwt"), "{d}");
    let a = post_raw(
        &app,
        Some("application/secevent+jwt"),
        vec![0xff, 0xfe, b'.'],
    )
    .await;
    set_error(&a, StatusCode::BAD_REQUEST, "invalid_request");

    let mut big = revoke_t1();
    big["padding"] = json!("x".repeat(64 * 1024));
    let a = post(&app, &sign(&big)).await;
    let d = set_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    assert!(d.contains("65536"), "{d}");
    assert_eq!(app.backend.len(), 0);

    // Media type parameters and case do not matter, and a missing
    // Content-Type is read as a SET.
    let a = post_raw(
        &app,
        Some("Application/SecEvent+JWT; charset=utf-8"),
        token.into_bytes(),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let mut claims = revoke_t1();
    claims["jti"] = json!("set-2");
    let a = post_raw(&app, None, sign(&claims).into_bytes()).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn other_methods_get_the_api_error_shape() {
    let app = app();
    let a = app.call(Method::GET, "/v1/events", None, Vec::new()).await;
    a.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(a.headers.get(header::ALLOW).unwrap(), "POST");
}
