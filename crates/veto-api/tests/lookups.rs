//! Lookups: `GET /v1/check`, `POST /v1/check` and the gateway's `/v1/auth`.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{jwt, App, START};
use serde_json::json;

const A: &str = "https://idp-a";

#[tokio::test]
async fn a_jwt_is_checked_by_every_claim_it_carries() {
    let app = App::new();
    app.revoke(json!({"scope": "session", "iss": A, "sid": "s-9", "reason": "logout"}))
        .await;
    let t = jwt(
        json!({"alg": "ES256", "kid": "k1"}),
        json!({"iss": A, "sub": "alice", "jti": "j1", "sid": "s-9", "iat": START - 5, "exp": START + 600}),
    );
    let hit = app.check(&[("token", &t)]).await;
    assert_eq!(hit["revoked"], true);
    assert_eq!(hit["scope"], "session");
    assert_eq!(hit["reason"], "logout");

    let clean = jwt(
        json!({"alg": "ES256"}),
        json!({"iss": A, "sub": "alice", "sid": "s-10"}),
    );
    assert_eq!(
        app.check(&[("token", &clean)]).await,
        json!({"revoked": false})
    );
}

#[tokio::test]
async fn check_refuses_ambiguous_or_empty_questions() {
    let app = App::new();
    for (uri, word) in [
        ("/v1/check", "nothing to check"),
        ("/v1/check?iat=5", "nothing to check"),
        ("/v1/check?token=abc&sub=alice", "not both"),
        ("/v1/check?jit=abc", "unknown query parameter \"jit\""),
        ("/v1/check?jti=a&jti=b", "given twice"),
        ("/v1/check?jti=a&iat=1&iat=2", "given twice"),
        ("/v1/check?sub=a&iat=-1", "`iat`"),
    ] {
        let m = app
            .get(uri)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains(word), "{uri}: {m}");
    }
}

#[tokio::test]
async fn percent_encoded_values_are_decoded() {
    let app = App::new();
    app.revoke(json!({"scope": "token", "iss": "https://idp/realm a", "jti": "a+b/c"}))
        .await;
    assert!(
        app.is_revoked(&[("iss", "https://idp/realm a"), ("jti", "a+b/c")])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", "https://idp/realm a"), ("jti", "a b/c")])
            .await
    );
}

#[tokio::test]
async fn batch_check_answers_in_order() {
    let app = App::new();
    app.revoke(json!({"scope": "subject", "iss": A, "sub": "alice"}))
        .await;
    app.revoke(json!({"scope": "token", "token": "opaque-1"}))
        .await;
    let fresh = jwt(
        json!({}),
        json!({"iss": A, "sub": "alice", "iat": START + 2}),
    );
    let old = jwt(
        json!({}),
        json!({"iss": A, "sub": "alice", "iat": START - 1}),
    );
    let a = app
        .call(
            Method::POST,
            "/v1/check",
            None,
            json!([
                {"iss": A, "sub": "alice", "iat": START - 1},
                {"iss": A, "sub": "alice", "iat": START + 2},
                {"token": "opaque-1"},
                {"token": "opaque-2"},
                {"token": old},
                {"token": fresh},
                {"iss": A, "sub": "bob"},
            ])
            .to_string()
            .into_bytes(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let results = a.json()["results"].as_array().unwrap().clone();
    let revoked: Vec<bool> = results
        .iter()
        .map(|r| r["revoked"].as_bool().unwrap())
        .collect();
    assert_eq!(revoked, [true, false, true, false, true, false, false]);
    assert_eq!(results[0]["scope"], "subject");
    assert_eq!(results[2]["scope"], "token");
    assert_eq!(results[1], json!({"revoked": false}));

    let a = app
        .call(Method::POST, "/v1/check", None, b"[]".to_vec())
        .await;
    assert_eq!(a.json(), json!({"results": []}));
}

#[tokio::test]
async fn batch_check_rejects_a_bad_item_by_index() {
    let app = App::new();
    for (body, code, word) in [
        (
            json!([{"sub": "a"}, {"token": "a.b.c"}]),
            "invalid_token",
            "item 1: malformed JWT",
        ),
        (
            json!([{"sub": "a"}, {}]),
            "invalid_request",
            "item 1: nothing to check",
        ),
        (
            json!([{"sub": "a"}, {"subject": "a"}]),
            "invalid_request",
            "item 1: unknown field",
        ),
    ] {
        let m = app
            .call(
                Method::POST,
                "/v1/check",
                None,
                body.to_string().into_bytes(),
            )
            .await
            .error(StatusCode::BAD_REQUEST, code);
        assert!(m.starts_with(word), "{m}");
    }
}

async fn auth(app: &App, method: Method, uri: &str, authorization: Option<&str>) -> common::Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(v) = authorization {
        req = req.header(header::AUTHORIZATION, v);
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn auth_allows_a_clean_token_with_an_empty_200() {
    let app = App::new();
    let t = jwt(json!({}), json!({"iss": A, "jti": "ok"}));
    for v in [
        format!("Bearer {t}"),
        format!("bearer {t}"),
        "Bearer opaque-ok".into(),
    ] {
        let a = auth(&app, Method::GET, "/v1/auth", Some(&v)).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.is_empty());
        assert!(a.headers.get(header::WWW_AUTHENTICATE).is_none());
    }
}

#[tokio::test]
async fn auth_denies_revoked_missing_and_malformed_tokens() {
    let app = App::new();
    app.revoke(json!({"scope": "token", "iss": A, "jti": "gone"}))
        .await;
    app.revoke(json!({"scope": "token", "token": "opaque-gone"}))
        .await;
    let revoked = jwt(json!({}), json!({"iss": A, "jti": "gone"}));

    for v in [format!("Bearer {revoked}"), "Bearer opaque-gone".into()] {
        let a = auth(&app, Method::GET, "/v1/auth", Some(&v)).await;
        a.error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert_eq!(
            a.headers[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"the token has been revoked\""
        );
    }
    for (v, word) in [
        (None, "no Authorization header"),
        (Some("Basic dXNlcjpwYXNz"), "not a Bearer token"),
        (Some("Bearer "), "empty"),
        (Some("Bearer x.\"y.z"), "malformed JWT"),
    ] {
        let a = auth(&app, Method::GET, "/v1/auth", v).await;
        let m = a.error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(m.contains(word), "{m}");
        let challenge = a.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""));
        // The description must stay one quoted string.
        assert_eq!(challenge.matches('"').count(), 4, "{challenge}");
    }
}

/// A proxy joins repeated headers with a comma (Envoy asks its ext_authz
/// service with `Bearer a,Bearer b`); a bearer token never holds one. Such a
/// list is refused as the headers themselves would be.
#[tokio::test]
async fn auth_refuses_a_comma_separated_list_of_credentials() {
    let app = App::new();
    app.revoke(json!({"scope": "token", "token": "opaque-gone"}))
        .await;
    for v in [
        "Bearer opaque-ok,Bearer opaque-gone",
        "Bearer opaque-gone, Bearer opaque-ok",
        "Bearer opaque-ok,opaque-ok",
    ] {
        let a = auth(&app, Method::GET, "/v1/auth", Some(v)).await;
        let m = a.error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert_eq!(m, "more than one Authorization header", "{v}");
    }
}

/// A node that is not ready cannot judge: 503, never a possibly wrong 200.
#[tokio::test]
async fn auth_answers_503_while_the_node_is_not_ready() {
    let app = App::new();
    app.backend
        .ready
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let a = auth(&app, Method::GET, "/v1/auth", Some("Bearer opaque-ok")).await;
    let m = a.error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(m, veto_api::NOT_READY_MESSAGE);
}

#[tokio::test]
async fn auth_serves_envoy_style_subrequests_with_any_method_and_path() {
    let app = App::new();
    app.revoke(json!({"scope": "token", "token": "opaque-gone"}))
        .await;
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
    ] {
        for uri in ["/v1/auth", "/v1/auth/api/orders/7?x=1", "/v1/auth/"] {
            let ok = auth(&app, method.clone(), uri, Some("Bearer opaque-ok")).await;
            assert_eq!(ok.status, StatusCode::OK, "{method} {uri}");
            let no = auth(&app, method.clone(), uri, Some("Bearer opaque-gone")).await;
            assert_eq!(no.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        }
    }
    // The original request's body is never read, however large.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/upload")
        .header(header::AUTHORIZATION, "Bearer opaque-ok")
        .body(Body::from(vec![0u8; 2 * veto_api::MAX_BODY_BYTES]))
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unescaped_plus_in_a_query_token_is_a_plus() {
    let app = App::new();
    app.revoke(json!({"scope": "token", "token": "abc+def/ghi=="}))
        .await;
    assert!(app.is_revoked(&[("token", "abc+def/ghi==")]).await);
    let a = app.get("/v1/check?token=abc+def/ghi==").await;
    assert_eq!(a.json()["revoked"], true);
    let a = app.get("/v1/check?token=abc%2Bdef%2Fghi%3D%3D").await;
    assert_eq!(a.json()["revoked"], true);
}

#[tokio::test]
async fn empty_query_values_count_as_absent_and_fail_closed() {
    let app = App::new();
    app.revoke(json!({"scope": "subject", "iss": A, "sub": "alice"}))
        .await;
    // An empty iss matches the record of issuer A; an empty iat lets the cutoff apply.
    let a = app.get("/v1/check?iss=&sub=alice&iat=&jti=&sid=").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["revoked"], true);
    for uri in ["/v1/check?token=", "/v1/check?iss=&sub="] {
        let m = app
            .get(uri)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains("nothing to check"), "{uri}: {m}");
    }
}
