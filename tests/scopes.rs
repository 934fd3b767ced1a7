//! Every scope revokes what it should and nothing else, through a real node.

mod support;

use serde_json::json;
use support::{jwt, now, Veto};

#[test]
fn each_scope_revokes_exactly_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    let t = now();

    // token: (iss, jti) and jti for any issuer.
    veto.revoke(json!({"scope": "token", "iss": "https://a", "jti": "j1", "reason": "leaked"}));
    assert!(veto.revoked(&[("iss", "https://a"), ("jti", "j1")]));
    assert!(!veto.revoked(&[("iss", "https://b"), ("jti", "j1")]));
    assert!(!veto.revoked(&[("iss", "https://a"), ("jti", "j2")]));
    veto.revoke(json!({"scope": "token", "jti": "any-issuer"}));
    assert!(veto.revoked(&[("iss", "https://z"), ("jti", "any-issuer")]));

    // session
    veto.revoke(json!({"scope": "session", "iss": "https://a", "sid": "s1"}));
    assert!(veto.revoked(&[("iss", "https://a"), ("sid", "s1"), ("jti", "other")]));
    assert!(!veto.revoked(&[("iss", "https://a"), ("sid", "s2")]));

    // subject before T: older tokens revoked, newer not, no iat fails closed.
    let before = (t - 100).to_string();
    veto.revoke(json!({"scope": "subject", "iss": "https://a", "sub": "alice", "before": t - 100}));
    assert!(veto.revoked(&[
        ("iss", "https://a"),
        ("sub", "alice"),
        ("iat", &(t - 200).to_string())
    ]));
    assert!(!veto.revoked(&[("iss", "https://a"), ("sub", "alice"), ("iat", &before)]));
    assert!(
        veto.revoked(&[("iss", "https://a"), ("sub", "alice")]),
        "no iat: fail closed"
    );
    assert!(!veto.revoked(&[("iss", "https://a"), ("sub", "bob"), ("iat", "1")]));

    // client before T
    veto.revoke(json!({"scope": "client", "client_id": "web", "before": t - 50}));
    assert!(veto.revoked(&[("client_id", "web"), ("iat", &(t - 60).to_string())]));
    assert!(!veto.revoked(&[("client_id", "web"), ("iat", &(t - 10).to_string())]));
    assert!(!veto.revoked(&[("client_id", "mobile"), ("iat", "1")]));

    // issuer before T
    veto.revoke(json!({"scope": "issuer", "iss": "https://old", "before": t - 10}));
    assert!(veto.revoked(&[("iss", "https://old"), ("iat", &(t - 20).to_string())]));
    assert!(!veto.revoked(&[("iss", "https://old"), ("iat", &t.to_string())]));
    assert!(!veto.revoked(&[("iss", "https://new"), ("iat", "1")]));

    // key
    veto.revoke(json!({"scope": "key", "kid": "k-2024"}));
    assert!(veto.revoked(&[("kid", "k-2024")]));
    assert!(!veto.revoked(&[("kid", "k-2025")]));

    // opaque token: stored hashed, found by the same string only.
    let rec = veto.revoke(json!({"scope": "token", "token": "opaque-secret-1"}));
    assert!(
        !rec.to_string().contains("opaque-secret-1"),
        "the store must never hold the token: {rec}"
    );
    assert!(veto.revoked(&[("token", "opaque-secret-1")]));
    assert!(!veto.revoked(&[("token", "opaque-secret-2")]));
}

#[test]
fn check_answers_carry_the_matching_record() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    let rec =
        veto.revoke(json!({"scope": "session", "sid": "s9", "reason": "hijacked", "actor": "soc"}));
    let answer = veto.get_json("/v1/check?sid=s9");
    assert_eq!(answer["revoked"], true);
    assert_eq!(answer["scope"], "session");
    assert_eq!(answer["reason"], "hijacked");
    assert_eq!(answer["id"], rec["id"]);
    let revoked_at = answer["revoked_at"].as_u64().unwrap();
    assert!(revoked_at.abs_diff(now()) < 60);
    assert_eq!(
        veto.get_json("/v1/check?sid=s10"),
        json!({"revoked": false})
    );
}

#[test]
fn jwt_checks_decode_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    let t = now();
    veto.revoke(
        json!({"scope": "subject", "iss": "https://idp", "sub": "carol", "before": t - 100}),
    );
    veto.revoke(json!({"scope": "key", "kid": "bad-key"}));
    let old = jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": "https://idp", "sub": "carol", "iat": t - 200, "jti": "a"}),
    );
    let fresh = jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": "https://idp", "sub": "carol", "iat": t, "jti": "b"}),
    );
    let bad_key = jwt(
        json!({"alg": "RS256", "kid": "bad-key"}),
        json!({"iss": "https://idp", "sub": "dave", "iat": t}),
    );
    assert!(veto.revoked(&[("token", &old)]));
    assert!(!veto.revoked(&[("token", &fresh)]));
    assert!(veto.revoked(&[("token", &bad_key)]));

    // POST /v1/check answers in order.
    let r = veto
        .http
        .post(format!("{}/v1/check", veto.url))
        .json(&json!([{"token": old}, {"token": fresh}, {"iss": "https://idp", "sub": "carol", "iat": t - 500}]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    let flags: Vec<bool> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["revoked"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, vec![true, false, true]);

    // /v1/auth, as nginx's auth_request calls it.
    let auth = |token: &str| {
        veto.http
            .get(format!("{}/v1/auth", veto.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    assert_eq!(auth(&fresh).status(), 200);
    let denied = auth(&old);
    assert_eq!(denied.status(), 401);
    let challenge = denied.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(veto.get("/v1/auth").status(), 401, "no token");
}

#[test]
fn the_audit_trail_lists_who_revoked_what_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    for i in 0..5 {
        veto.revoke(json!({"scope": "token", "jti": format!("a{i}"), "reason": format!("r{i}"), "actor": "alice"}));
    }
    veto.revoke(json!({"scope": "key", "kid": "k", "actor": "bob"}));
    let r = veto.admin_get("/v1/revocations");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 6);
    assert_eq!(recs[0]["scope"], "key");
    assert_eq!(recs[0]["actor"], "admin", "the token that wrote it");
    assert_eq!(recs[0]["on_behalf_of"], "bob", "whom the client named");
    assert_eq!(recs[5]["jti"], "a0");
    assert_eq!(recs[5]["reason"], "r0");
    let status = veto.get_json("/v1/status");
    assert_eq!(recs[5]["origin"], status["node"]["id"]);

    let v: serde_json::Value = veto
        .admin_get("/v1/revocations?scope=token&limit=2")
        .json()
        .unwrap();
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["jti"], "a4");
    let v: serde_json::Value = veto.admin_get("/v1/revocations?key=a2").json().unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
    assert_eq!(
        veto.get("/v1/revocations").status(),
        401,
        "audit needs the admin token"
    );
}
