//! Shared Signals through a real node: `veto serve --config` with transmitters
//! in `[[transmitters]]`, SETs signed with jsonwebtoken pushed over HTTP.

mod support;

use std::process::{Command, Stdio};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::{now, veto_bin, Veto};

const ISS: &str = "https://idp.example.com/";
const ISS_INLINE: &str = "https://second.example/";
const AUD: &str = "https://veto.example/events";
const TOKENS_REVOKED: &str = "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

/// An EC P-256 key for test SETs only (made with `openssl genpkey`).
const EC_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtf6FOv5aSdpaDSO1
5k6r5vEgIZnQyoWSZAdeMXO0xUWhRANCAAS7hFKjo619i5bX5xy6uZzseHusggDp
dlZ1NQnYjWGNE0gZlYxBxLPRgxtp8jnk/5LNfapKVgb+5aYfZH1NICrB
-----END PRIVATE KEY-----
";

/// Another EC P-256 key, which no transmitter has.
const FORGER_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQdV8wvLO/UH7SWZ3
C5pzpeyeb7C24dqcOYKQDU05/B2hRANCAAScEJmW/AuZICBCo7iARyHzr5UcA2dO
4NhzFms3oFLthUcPIodTqRN7gXPIn2eOfpchjseSPrqaMV+rEy/OUx8j
-----END PRIVATE KEY-----
";

fn key(pem: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
}

fn jwks(pem: &str, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&key(pem), Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(JwkSet { keys: vec![jwk] }).unwrap()
}

fn sign(pem: &str, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some("secevent+jwt".into());
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &key(pem)).unwrap()
}

/// Writes a config naming one transmitter by JWKS file (relative to the
/// config) and one with its JWKS inline, and returns the config's path.
fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(dir.join("idp-jwks.json"), jwks(EC_KEY, "k1").to_string()).unwrap();
    let inline = jwks(FORGER_KEY, "other").to_string();
    let config = format!(
        "[[transmitters]]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\njwks_file = \"idp-jwks.json\"\n\n\
         [[transmitters]]\nissuer = \"{ISS_INLINE}\"\naudience = \"{AUD}\"\njwks = '''{inline}'''\n"
    );
    let path = dir.join("veto.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn push(veto: &Veto, set: &str) -> (u16, String) {
    let r = veto
        .http
        .post(format!("{}/v1/events", veto.url))
        .header("Content-Type", "application/secevent+jwt")
        .body(set.to_owned())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn audit_count(veto: &Veto) -> usize {
    let v: Value = veto.admin_get("/v1/revocations").json().unwrap();
    v["records"].as_array().unwrap().len()
}

#[test]
fn a_configured_transmitter_revokes_through_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data = dir.path().join("data");
    let veto = Veto::start(&data, &["--config", config.to_str().unwrap()]);
    let t = now();

    let claims = json!({
        "iss": ISS, "aud": AUD, "iat": t, "jti": "evt-1",
        "events": {TOKENS_REVOKED: {
            "subject": {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "alice"},
            "event_timestamp": t - 60,
        }},
    });
    let set = sign(EC_KEY, "k1", &claims);
    assert_eq!(push(&veto, &set), (202, String::new()));
    let old = (t - 61).to_string();
    let new = (t - 59).to_string();
    assert!(veto.revoked(&[("iss", ISS), ("sub", "alice"), ("iat", &old)]));
    assert!(!veto.revoked(&[("iss", ISS), ("sub", "alice"), ("iat", &new)]));
    let audit: Value = veto.admin_get("/v1/revocations").json().unwrap();
    assert_eq!(audit["records"][0]["actor"], ISS);
    assert_eq!(audit["records"][0]["reason"], TOKENS_REVOKED);
    assert_eq!(audit["records"][0]["before"], t - 60);

    // The same SET again: accepted, nothing stored.
    assert_eq!(push(&veto, &set), (202, String::new()));
    assert_eq!(audit_count(&veto), 1);

    // A forgery under the first transmitter's name and kid.
    let (status, body) = push(&veto, &sign(FORGER_KEY, "k1", &claims));
    assert_eq!(status, 400);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["err"], "authentication_failed", "{err}");

    // The inline-JWKS transmitter, with its own key.
    let claims = json!({
        "iss": ISS_INLINE, "aud": AUD, "iat": t, "jti": "evt-1",
        "sub_id": {"format": "complex",
                   "user": {"format": "iss_sub", "iss": ISS, "sub": "bob"},
                   "session": {"format": "opaque", "id": "sess-9"}},
        "events": {SESSION_REVOKED: {"reason_admin": {"en": "Device lost"}}},
    });
    assert_eq!(
        push(&veto, &sign(FORGER_KEY, "other", &claims)),
        (202, String::new())
    );
    assert!(veto.revoked(&[("iss", ISS), ("sid", "sess-9")]));
    let audit: Value = veto.admin_get("/v1/revocations").json().unwrap();
    assert_eq!(audit["records"][0]["actor"], ISS_INLINE);
    assert_eq!(
        audit["records"][0]["reason"],
        format!("{SESSION_REVOKED}: Device lost")
    );

    // Wrong audience and an unknown issuer.
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("https://someone-else");
    wrong_aud["jti"] = json!("evt-2");
    let (status, body) = push(&veto, &sign(FORGER_KEY, "other", &wrong_aud));
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap()["err"].clone()
        ),
        (400, json!("invalid_audience"))
    );
    let mut stranger = claims;
    stranger["iss"] = json!("https://stranger.example/");
    let (status, body) = push(&veto, &sign(FORGER_KEY, "other", &stranger));
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap()["err"].clone()
        ),
        (400, json!("invalid_issuer"))
    );
    assert_eq!(audit_count(&veto), 2);
}

#[test]
fn a_transmitter_whose_keys_cannot_be_read_stops_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("veto.toml");
    std::fs::write(
        &config,
        format!("[[transmitters]]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\njwks_file = \"missing.json\"\n"),
    )
    .unwrap();
    let out = Command::new(veto_bin())
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("VETO_ADMIN_TOKEN", "t")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.json"), "{stderr}");
}
