//! The audit trail, RFC 7009, membership, status, health and metrics.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine as _;
use common::{jwt, App, ADMIN, DAY, NODE, START};
use serde_json::{json, Value};
use veto_core::{Hlc, NodeId, Record, RecordId, Target};

fn ids(list: &Value) -> Vec<String> {
    list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id(seq: u64) -> String {
    format!("{NODE:016x}-{seq}")
}

#[tokio::test]
async fn audit_lists_newest_first_and_filters() {
    let app = App::new();
    app.revoke(json!({"scope": "token", "iss": "i1", "jti": "j1"}))
        .await; // seq 1 at START
    app.advance(10);
    app.revoke(json!({"scope": "session", "iss": "i2", "sid": "s1"}))
        .await; // 2 at +10
    app.advance(10);
    app.revoke(json!({"scope": "subject", "iss": "i1", "sub": "alice"}))
        .await; // 3 at +20
    app.revoke(json!({"scope": "token", "token": "opaque"}))
        .await; // 4 at +20
    let remote = NodeId::new(0xdef);
    app.backend.insert_remote(Record {
        id: RecordId {
            origin: remote,
            seq: 1,
        },
        hlc: Hlc::from_unix(std::time::Duration::from_secs(START + 5)),
        target: Target::Key {
            iss: None,
            kid: "k1".into(),
        },
        expires_at: START + DAY,
        reason: "rotated".into(),
        actor: "ops".into(),
    });

    let all = app.admin_get("/v1/revocations").await.json();
    assert_eq!(
        ids(&all),
        [id(4), id(3), id(2), format!("{:016x}-1", 0xdef), id(1)]
    );

    let q = |s: &str| format!("/v1/revocations?{s}");
    let cases: Vec<(String, Vec<String>)> = vec![
        (q("scope=token"), vec![id(4), id(1)]),
        (q("key=i1"), vec![id(3), id(1)]),
        (q("key=alice"), vec![id(3)]),
        (q(&format!("key={}", hex_sha("opaque"))), vec![id(4)]),
        (q(&format!("origin={NODE:016x}&scope=session")), vec![id(2)]),
        (
            q(&format!("origin={:016x}", 0xdef)),
            vec![format!("{:016x}-1", 0xdef)],
        ),
        (
            q(&format!("since={}", START + 10)),
            vec![id(4), id(3), id(2)],
        ),
        (
            q(&format!("until={}", START + 10)),
            vec![format!("{:016x}-1", 0xdef), id(1)],
        ),
        (
            q(&format!("since={}&until={}", START + 5, START + 11)),
            vec![id(2), format!("{:016x}-1", 0xdef)],
        ),
        (q("limit=2"), vec![id(4), id(3)]),
        (q("key=nobody"), vec![]),
    ];
    for (uri, want) in cases {
        assert_eq!(ids(&app.admin_get(&uri).await.json()), want, "{uri}");
    }

    let rec = &all["records"][0];
    assert_eq!(rec["token_sha256"], hex_sha("opaque"));
    assert_eq!(rec["revoked_at"], START + 20);
    let key = &all["records"][3];
    assert_eq!(key["reason"], "rotated");
    assert_eq!(key["actor"], "ops");
}

fn hex_sha(s: &str) -> String {
    match Target::opaque_token(s) {
        Target::TokenHash { sha256 } => hex::encode(sha256),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn audit_streams_ndjson_when_asked() {
    let app = App::new();
    app.revoke(json!({"scope": "token", "iss": "i1", "jti": "j1"}))
        .await;
    app.advance(1);
    app.revoke(json!({"scope": "subject", "iss": "i1", "sub": "alice"}))
        .await;
    let json = app.admin_get("/v1/revocations?key=i1").await.json();
    let req = Request::builder()
        .uri("/v1/revocations?key=i1")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(
            header::ACCEPT,
            "application/json;q=0.5, application/x-ndjson",
        )
        .body(Body::empty())
        .unwrap();
    let answer = app.send(req).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/x-ndjson");
    let text = String::from_utf8(answer.body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, json["records"].as_array().unwrap().clone());
    assert_eq!(lines.len(), 2);
    assert!(text.ends_with('\n'));
}

#[tokio::test]
async fn audit_refuses_bad_filters() {
    let app = App::new();
    for (uri, word) in [
        (
            "/v1/revocations?scope=user",
            "valid scopes are token, session",
        ),
        ("/v1/revocations?origin=xyz", "`origin`"),
        ("/v1/revocations?since=yesterday", "`since`"),
        ("/v1/revocations?until=-1", "`until`"),
        ("/v1/revocations?limit=0", "`limit`"),
        ("/v1/revocations?limit=1001", "1 to 1000"),
        ("/v1/revocations?limt=5", "unknown query parameter"),
    ] {
        let m = app
            .admin_get(uri)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains(word), "{uri}: {m}");
    }
    assert_eq!(
        app.admin_get("/v1/revocations?limit=1000").await.status,
        200
    );
}

async fn oauth(app: &App, form: &str, auth: Option<String>) -> common::Answer {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/revoke")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    app.send(req.body(Body::from(form.to_owned())).unwrap())
        .await
}

fn bearer() -> Option<String> {
    Some(format!("Bearer {ADMIN}"))
}

#[tokio::test]
async fn rfc7009_revokes_a_jwt_by_iss_and_jti_until_its_exp() {
    let app = App::new();
    let t = jwt(
        json!({"alg": "RS256"}),
        json!({"iss": "https://idp", "jti": "j-77", "sub": "alice", "exp": START + 900}),
    );
    let a = oauth(
        &app,
        &format!("token={t}&token_type_hint=access_token"),
        bearer(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
    let records = app.backend.records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].target,
        Target::Token {
            iss: Some("https://idp".into()),
            jti: "j-77".into()
        }
    );
    assert_eq!(records[0].expires_at, START + 900);
    assert_eq!(
        veto_core::actor::split(&records[0].actor),
        ("admin", Some(veto_api::OAUTH_ACTOR)),
        "the token names the actor, the endpoint stands in for the missing client id"
    );
    assert!(app.is_revoked(&[("token", &t)]).await);
    assert!(
        app.is_revoked(&[("iss", "https://idp"), ("jti", "j-77")])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", "https://idp"), ("sub", "alice")])
            .await
    );
}

#[tokio::test]
async fn rfc7009_revokes_other_tokens_by_hash_and_always_answers_200() {
    let app = App::new();
    let no_jti = jwt(json!({}), json!({"iss": "https://idp", "sub": "alice"}));
    let tokens = [
        "opaque-refresh-1",
        "not.a.jwt",
        no_jti.as_str(),
        "tok+en/1==",
    ];
    for t in tokens {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", t)
            .append_pair("token_type_hint", "refresh_token")
            .append_pair("client_id", "web")
            .finish();
        let a = oauth(&app, &form, bearer()).await;
        assert_eq!(a.status, StatusCode::OK, "{t}");
    }
    for (r, t) in app.backend.records().iter().zip(tokens) {
        assert_eq!(r.target, Target::opaque_token(t));
        assert_eq!(r.expires_at, START + DAY);
    }
    for t in ["opaque-refresh-1", no_jti.as_str(), "tok+en/1=="] {
        assert!(app.is_revoked(&[("token", t)]).await, "{t}");
    }
    // A token with two dots that is no JWT cannot be looked up (400), and the
    // gateway endpoint denies it whatever is stored.
    app.get(&common::check_uri(&[("token", "not.a.jwt")]))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_token");
    // A `+` left unescaped in the form still revokes the token with the `+`.
    assert_eq!(oauth(&app, "token=un+escaped", bearer()).await.status, 200);
    assert!(app.is_revoked(&[("token", "un+escaped")]).await);
    // Revoking the same token again is still 200 and still revoked.
    assert_eq!(
        oauth(&app, "token=opaque-refresh-1", bearer()).await.status,
        200
    );
    assert!(app.is_revoked(&[("token", "opaque-refresh-1")]).await);
}

#[tokio::test]
async fn rfc7009_errors() {
    let app = App::new();
    let a = oauth(&app, "token=abc&token_type_hint=id_token", bearer()).await;
    let m = a.error(StatusCode::BAD_REQUEST, "unsupported_token_type");
    assert_eq!(a.json()["error_description"], m);
    for form in [
        "",
        "token=",
        "token_type_hint=access_token",
        "token=a&token=b",
    ] {
        oauth(&app, form, bearer())
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    oauth(&app, "token=abc", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_client");
    let wrong = base64::engine::general_purpose::STANDARD.encode("client:wrong");
    oauth(&app, "token=abc", Some(format!("Basic {wrong}")))
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(app.backend.len(), 0);

    // HTTP Basic with the admin token as password is accepted.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("client:{ADMIN}"));
    let a = oauth(&app, "token=abc", Some(format!("Basic {basic}"))).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(app.backend.len(), 1);
}

#[tokio::test]
async fn peers_are_added_listed_and_removed() {
    let app = App::new();
    app.get("/v1/peers")
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.admin_get("/v1/peers").await.json(),
        json!({"peers": []})
    );
    let a = app
        .admin_post(
            "/v1/peers",
            &json!({"addr": "10.0.0.2:7401", "name": "us-east"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        a.json(),
        json!({"name": "us-east", "addr": "10.0.0.2:7401", "state": "connecting",
               "lag": 0, "rtt_ms": null, "last_contact": null})
    );
    app.admin_post("/v1/peers", &json!({"addr": "10.0.0.3:7401"}))
        .await;
    app.admin_post("/v1/peers", &json!({"addr": "10.0.0.3:7401"}))
        .await
        .error(StatusCode::CONFLICT, "conflict");
    app.admin_post("/v1/peers", &json!({"name": "x"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    app.admin_post("/v1/peers", &json!({"addr": ""}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    let list = app.admin_get("/v1/peers").await.json();
    assert_eq!(list["peers"].as_array().unwrap().len(), 2);

    let del = |p: &'static str| app.call(Method::DELETE, p, Some(ADMIN), vec![]);
    assert_eq!(
        del("/v1/peers/us-east").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        del("/v1/peers/10.0.0.3:7401").await.status,
        StatusCode::NO_CONTENT
    );
    del("/v1/peers/us-east")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.admin_get("/v1/peers").await.json(),
        json!({"peers": []})
    );
}

#[tokio::test]
async fn status_reports_node_count_digest_and_peers() {
    let app = App::new();
    let empty = app.get("/v1/status").await.json();
    app.revoke(json!({"scope": "key", "kid": "k"})).await;
    app.admin_post("/v1/peers", &json!({"addr": "10.0.0.2:7401"}))
        .await;
    let s = app.get("/v1/status").await.json();
    assert_eq!(
        s["node"],
        json!({"id": format!("{NODE:016x}"), "name": "eu-1", "region": "eu-west"})
    );
    assert_eq!(s["revocations"], 1);
    assert_ne!(s["digest"], empty["digest"]);
    assert!(s["digest"].as_str().unwrap().ends_with("-1"));
    assert_eq!(s["peers"][0]["addr"], "10.0.0.2:7401");
    assert_eq!(s["peers"][0]["name"], Value::Null);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = App::new();
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    app.backend
        .ready
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    app.get("/readyz")
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[tokio::test]
async fn metrics_count_lookups_by_result_and_endpoint() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The router registers its lookup counters when it is built.
    let app = metrics::with_local_recorder(&recorder, || {
        App::with_config(|c| c.with_prometheus(handle))
    });
    app.revoke(json!({"scope": "key", "kid": "k"})).await;
    app.check(&[("kid", "k")]).await;
    app.check(&[("kid", "other")]).await;
    app.check(&[("kid", "other")]).await;
    app.get("/v1/check?iat=x").await;
    app.call(Method::GET, "/v1/auth", Some("opaque"), vec![])
        .await;

    let a = app.get("/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(a.body).unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has(r#"veto_lookups_total{result="revoked",endpoint="check"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"veto_lookups_total{result="clean",endpoint="check"} 2"#),
        "{text}"
    );
    assert!(
        has(r#"veto_lookups_total{result="error",endpoint="check"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"veto_lookups_total{result="clean",endpoint="auth"} 1"#),
        "{text}"
    );
    assert!(text.contains("veto_lookup_seconds"), "{text}");
}
