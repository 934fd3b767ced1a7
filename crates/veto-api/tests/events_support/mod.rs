//! Helpers for the Shared Signals tests: two configured transmitters, SETs
//! signed with jsonwebtoken, and posting them.

#![allow(dead_code)]

pub(crate) mod keys;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use veto_api::Transmitter;

use crate::common::{Answer, App, START};

pub(crate) const ISS_A: &str = "https://idp.example.com/";
pub(crate) const ISS_B: &str = "https://ssf.other.example/";
pub(crate) const AUD: &str = "https://veto.example/events";
pub(crate) const KID_A: &str = "rsa-1";
pub(crate) const KID_B: &str = "ec-1";
pub(crate) const REPLAY_WINDOW: u64 = 3600;

pub(crate) const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub(crate) const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
pub(crate) const TOKEN_REVOKED: &str =
    "https://schemas.openid.net/secevent/oauth/event-type/token-revoked";
pub(crate) const TOKENS_REVOKED: &str =
    "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked";

pub(crate) fn rsa_a() -> EncodingKey {
    EncodingKey::from_rsa_pem(keys::RSA_A.as_bytes()).unwrap()
}

pub(crate) fn rsa_forger() -> EncodingKey {
    EncodingKey::from_rsa_pem(keys::RSA_FORGER.as_bytes()).unwrap()
}

pub(crate) fn ec_b() -> EncodingKey {
    EncodingKey::from_ec_pem(keys::EC_B.as_bytes()).unwrap()
}

/// The public JWKS of one key.
pub(crate) fn jwks(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(JwkSet { keys: vec![jwk] }).unwrap()
}

/// Transmitter A (RS256) and transmitter B (ES256), both for [`AUD`].
pub(crate) fn transmitters() -> Vec<Transmitter> {
    vec![
        Transmitter::new(ISS_A, AUD, &jwks(&rsa_a(), Algorithm::RS256, KID_A)).unwrap(),
        Transmitter::new(ISS_B, AUD, &jwks(&ec_b(), Algorithm::ES256, KID_B)).unwrap(),
    ]
}

/// A router over an in-memory node that accepts both transmitters.
pub(crate) fn app() -> App {
    App::with_config(|c| {
        transmitters()
            .into_iter()
            .fold(c, |c, t| c.with_transmitter(t))
            .with_set_replay_window(Duration::from_secs(REPLAY_WINDOW))
    })
}

/// Signs `claims` as a SET with this key, `alg` and `kid`.
pub(crate) fn sign_with(
    key: &EncodingKey,
    alg: Algorithm,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    let mut h = Header::new(alg);
    h.typ = Some("secevent+jwt".into());
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

/// A SET from transmitter A, signed with its key.
pub(crate) fn sign(claims: &Value) -> String {
    sign_with(&rsa_a(), Algorithm::RS256, Some(KID_A), claims)
}

/// The claims of a SET from transmitter A carrying one event.
pub(crate) fn set(jti: &str, event: &str, payload: Value) -> Value {
    json!({
        "iss": ISS_A,
        "aud": AUD,
        "iat": START - 10,
        "jti": jti,
        "events": {event: payload},
    })
}

pub(crate) async fn post_raw(app: &App, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    let mut req = Request::builder().method(Method::POST).uri("/v1/events");
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    app.send(req.body(Body::from(body)).unwrap()).await
}

/// Posts a SET as `application/secevent+jwt`.
pub(crate) async fn post(app: &App, token: &str) -> Answer {
    post_raw(
        app,
        Some("application/secevent+jwt"),
        token.as_bytes().to_vec(),
    )
    .await
}

/// Posts a SET and asserts 202 with an empty body.
pub(crate) async fn accept(app: &App, token: &str) {
    let a = post(app, token).await;
    assert_eq!(
        a.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert!(a.body.is_empty());
}

/// Asserts an RFC 8935 error and returns its description.
#[track_caller]
pub(crate) fn set_error(a: &Answer, status: StatusCode, err: &str) -> String {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(
        a.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let v = a.json();
    assert_eq!(v["err"], err, "{v}");
    v["description"].as_str().unwrap().to_owned()
}
