//! Every scope revokes exactly what it names, through the HTTP API.

mod common;

use common::{jwt, App, DAY, NODE, START};
use serde_json::json;

const A: &str = "https://idp-a";
const B: &str = "https://idp-b";

#[tokio::test]
async fn token_scope_by_jti() {
    let app = App::new();
    let rec = app
        .revoke(json!({"scope": "token", "iss": A, "jti": "j1", "reason": "leaked"}))
        .await;
    assert_eq!(rec["scope"], "token");
    assert_eq!(rec["iss"], A);
    assert_eq!(rec["jti"], "j1");
    assert_eq!(rec["expires_at"], START + DAY);
    assert_eq!(rec["actor"], "admin");
    assert_eq!(rec["origin"], format!("{NODE:016x}"));
    assert_eq!(rec["seq"], 1);
    assert_eq!(rec["id"], format!("{NODE:016x}-1"));
    assert_eq!(rec["revoked_at"], START);
    assert!(rec["hlc"].as_str().unwrap().parse::<u64>().is_ok());

    let hit = app.check(&[("iss", A), ("jti", "j1")]).await;
    assert_eq!(
        hit,
        json!({"revoked": true, "scope": "token", "id": rec["id"], "reason": "leaked", "revoked_at": START})
    );
    // Without an issuer the check cannot rule A out: fail closed.
    assert!(app.is_revoked(&[("jti", "j1")]).await);
    assert!(!app.is_revoked(&[("iss", B), ("jti", "j1")]).await);
    assert!(!app.is_revoked(&[("iss", A), ("jti", "j2")]).await);
    assert!(!app.is_revoked(&[("iss", A), ("sid", "j1")]).await);
    assert!(!app.is_revoked(&[("iss", A), ("sub", "j1")]).await);

    let t = jwt(
        json!({"alg": "RS256"}),
        json!({"iss": A, "jti": "j1", "sub": "x"}),
    );
    assert!(app.is_revoked(&[("token", &t)]).await);
    let t = jwt(json!({"alg": "RS256"}), json!({"iss": B, "jti": "j1"}));
    assert!(!app.is_revoked(&[("token", &t)]).await);
}

#[tokio::test]
async fn token_scope_by_opaque_token_keeps_only_its_hash() {
    let app = App::new();
    let rec = app
        .revoke(json!({"scope": "token", "token": "opaque-secret-1"}))
        .await;
    let sha = rec["token_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert!(!rec.to_string().contains("opaque-secret-1"));
    assert!(rec.get("jti").is_none() && rec.get("token").is_none());
    for r in app.backend.records() {
        assert_eq!(r.target, veto_core::Target::opaque_token("opaque-secret-1"));
    }

    assert!(app.is_revoked(&[("token", "opaque-secret-1")]).await);
    assert!(!app.is_revoked(&[("token", "opaque-secret-2")]).await);
    assert!(!app.is_revoked(&[("jti", "opaque-secret-1")]).await);
    // The audit trail finds it by the hash.
    let list = app
        .admin_get(&format!("/v1/revocations?key={sha}"))
        .await
        .json();
    assert_eq!(list["records"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_jwt_revoked_as_an_opaque_token_is_found_by_its_hash() {
    let app = App::new();
    let t = jwt(json!({"alg": "RS256"}), json!({"iss": A, "sub": "alice"}));
    app.revoke(json!({"scope": "token", "token": t})).await;
    assert!(app.is_revoked(&[("token", &t)]).await);
    // The same claims under another signature are another token.
    let other = format!("{}x", t);
    assert!(!app.is_revoked(&[("token", &other)]).await);
    assert!(!app.is_revoked(&[("iss", A), ("sub", "alice")]).await);
}

#[tokio::test]
async fn session_scope() {
    let app = App::new();
    app.revoke(json!({"scope": "session", "iss": A, "sid": "s1"}))
        .await;
    assert!(
        app.is_revoked(&[("iss", A), ("sid", "s1"), ("jti", "any")])
            .await
    );
    assert!(app.is_revoked(&[("sid", "s1")]).await);
    assert!(!app.is_revoked(&[("iss", B), ("sid", "s1")]).await);
    assert!(!app.is_revoked(&[("iss", A), ("sid", "s2")]).await);
    assert!(!app.is_revoked(&[("iss", A), ("jti", "s1")]).await);
}

#[tokio::test]
async fn session_scope_without_issuer_matches_every_issuer() {
    let app = App::new();
    let rec = app.revoke(json!({"scope": "session", "sid": "s1"})).await;
    assert!(rec.get("iss").is_none());
    assert!(app.is_revoked(&[("iss", A), ("sid", "s1")]).await);
    assert!(app.is_revoked(&[("iss", B), ("sid", "s1")]).await);
}

#[tokio::test]
async fn subject_scope_cuts_off_by_iat() {
    let app = App::new();
    let t = START - 100;
    let rec = app
        .revoke(json!({"scope": "subject", "iss": A, "sub": "alice", "before": t}))
        .await;
    assert_eq!(rec["before"], t);
    assert_eq!(rec["expires_at"], t + DAY);
    let iat = |v: u64| v.to_string();
    assert!(
        app.is_revoked(&[("iss", A), ("sub", "alice"), ("iat", &iat(t - 1))])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", A), ("sub", "alice"), ("iat", &iat(t))])
            .await
    );
    // No iat: the cutoff cannot be ruled out, so fail closed.
    assert!(app.is_revoked(&[("iss", A), ("sub", "alice")]).await);
    assert!(
        !app.is_revoked(&[("iss", A), ("sub", "bob"), ("iat", &iat(t - 1))])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", B), ("sub", "alice"), ("iat", &iat(t - 1))])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", A), ("client_id", "alice"), ("iat", "1")])
            .await
    );

    let old = jwt(json!({}), json!({"iss": A, "sub": "alice", "iat": t - 10}));
    let new = jwt(json!({}), json!({"iss": A, "sub": "alice", "iat": t + 10}));
    assert!(app.is_revoked(&[("token", &old)]).await);
    assert!(!app.is_revoked(&[("token", &new)]).await);
}

/// The default cutoff is now plus the maximum clock offset (500 ms, rounded
/// up to 1 s), plus one second since `iat` is whole seconds: a token issued in
/// the second of the revocation, even by an issuer whose clock runs up to the
/// offset ahead, is revoked.
#[tokio::test]
async fn bulk_scopes_default_before_to_now_plus_the_clock_offset() {
    let app = App::new();
    let rec = app
        .revoke(json!({"scope": "client", "iss": A, "client_id": "web"}))
        .await;
    assert_eq!(rec["before"], START + 2);
    assert_eq!(rec["expires_at"], START + 2 + DAY);
    let before = (START + 1).to_string();
    let after = (START + 2).to_string();
    assert!(
        app.is_revoked(&[("iss", A), ("client_id", "web"), ("iat", &before)])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", A), ("client_id", "web"), ("iat", &after)])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", A), ("client_id", "mobile"), ("iat", &before)])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", A), ("sub", "web"), ("iat", &before)])
            .await
    );
    // azp stands in for client_id in a JWT.
    let t = jwt(json!({}), json!({"iss": A, "azp": "web", "iat": START - 5}));
    assert!(app.is_revoked(&[("token", &t)]).await);
}

#[tokio::test]
async fn issuer_scope() {
    let app = App::new();
    let rec = app
        .revoke(json!({"scope": "issuer", "iss": A, "before": START, "expires_at": START + 10}))
        .await;
    assert_eq!(rec["expires_at"], START + 10);
    let before = (START - 1).to_string();
    assert!(app.is_revoked(&[("iss", A), ("iat", &before)]).await);
    assert!(
        app.is_revoked(&[("iss", A), ("sub", "anyone"), ("iat", &before)])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", A), ("iat", &START.to_string())])
            .await
    );
    assert!(!app.is_revoked(&[("iss", B), ("iat", &before)]).await);
    // A check without iss cannot be matched by an issuer cutoff.
    assert!(!app.is_revoked(&[("sub", "anyone"), ("iat", &before)]).await);
}

#[tokio::test]
async fn key_scope() {
    let app = App::new();
    app.revoke(json!({"scope": "key", "kid": "k1"})).await;
    assert!(app.is_revoked(&[("kid", "k1")]).await);
    assert!(
        app.is_revoked(&[("iss", B), ("kid", "k1"), ("sub", "x")])
            .await
    );
    assert!(!app.is_revoked(&[("kid", "k2")]).await);
    assert!(!app.is_revoked(&[("jti", "k1")]).await);
    let signed_k1 = jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": A, "sub": "x"}),
    );
    let signed_k2 = jwt(
        json!({"alg": "RS256", "kid": "k2"}),
        json!({"iss": A, "sub": "x"}),
    );
    assert!(app.is_revoked(&[("token", &signed_k1)]).await);
    assert!(!app.is_revoked(&[("token", &signed_k2)]).await);
}

#[tokio::test]
async fn a_batch_is_one_backend_write_answered_in_request_order() {
    let app = App::new();
    let batch = json!([
        {"scope": "token", "iss": A, "jti": "j1"},
        {"scope": "session", "sid": "s1", "reason": "logout"},
        {"scope": "key", "kid": "k9", "actor": "secops"},
    ]);
    let a = app.admin_post("/v1/revocations/batch", &batch).await;
    assert_eq!(a.status, 201);
    let records = a.json()["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["scope"], "token");
    assert_eq!(records[1]["reason"], "logout");
    assert_eq!(records[2]["actor"], "admin", "the token names the actor");
    assert_eq!(records[2]["on_behalf_of"], "secops");
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(
        app.backend
            .revoke_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    assert!(app.is_revoked(&[("iss", A), ("jti", "j1")]).await);
    assert!(app.is_revoked(&[("sid", "s1")]).await);
    assert!(app.is_revoked(&[("kid", "k9")]).await);
    assert!(!app.is_revoked(&[("sid", "s2")]).await);
}
