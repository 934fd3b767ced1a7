//! The bad-input table: every malformed request gets a 4xx (or 503) in the JSON
//! error shape, and nothing is stored.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{jwt, App, ADMIN, START};
use serde_json::json;

async fn post_raw(app: &App, uri: &str, body: impl Into<Vec<u8>>) -> common::Answer {
    app.call(Method::POST, uri, Some(ADMIN), body.into()).await
}

#[track_caller]
fn assert_nothing_stored(app: &App) {
    assert_eq!(app.backend.len(), 0, "a rejected request stored something");
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = App::new();
    for body in [
        "{",
        "{\"scope\": token}",
        "",
        "[1,",
        "{\"scope\":\"key\",\"kid\":\"k\"} trailing",
    ] {
        let m = post_raw(&app, "/v1/revocations", body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_json");
        assert!(m.contains("malformed JSON"), "{m}");
        post_raw(&app, "/v1/revocations/batch", body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_json");
    }
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn unknown_scope_lists_the_valid_ones() {
    let app = App::new();
    let m = app
        .admin_post("/v1/revocations", &json!({"scope": "user", "sub": "alice"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.contains("\"user\""), "{m}");
    for s in ["token", "session", "subject", "client", "issuer", "key"] {
        assert!(m.contains(s), "{m} lacks {s}");
    }
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_scope_without_its_key_names_the_key() {
    let app = App::new();
    let cases = [
        (json!({"scope": "token", "iss": "i"}), "jti"),
        (json!({"scope": "session", "iss": "i"}), "sid"),
        (json!({"scope": "subject"}), "sub"),
        (json!({"scope": "client"}), "client_id"),
        (json!({"scope": "issuer"}), "iss"),
        (json!({"scope": "key"}), "kid"),
        (json!({"iss": "i", "jti": "j"}), "scope"),
    ];
    for (body, key) in cases {
        let m = app
            .admin_post("/v1/revocations", &body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains(&format!("`{key}`")), "{body}: {m}");
    }
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn keys_of_another_scope_and_unknown_fields_are_refused() {
    let app = App::new();
    for (body, word) in [
        (
            json!({"scope": "session", "sid": "s", "sub": "alice"}),
            "`sub`",
        ),
        (
            json!({"scope": "key", "kid": "k", "before": START}),
            "`before`",
        ),
        (json!({"scope": "key", "kid": "k", "kidd": "x"}), "kidd"),
        (
            json!({"scope": "token", "jti": "j", "token": "t"}),
            "not both",
        ),
    ] {
        let m = app
            .admin_post("/v1/revocations", &body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains(word), "{body}: {m}");
    }
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn strings_over_512_bytes_are_refused() {
    let app = App::new();
    let long = "x".repeat(513);
    for body in [
        json!({"scope": "token", "jti": long}),
        json!({"scope": "token", "iss": long, "jti": "j"}),
        json!({"scope": "session", "sid": long}),
        json!({"scope": "subject", "sub": long}),
        json!({"scope": "client", "client_id": long}),
        json!({"scope": "issuer", "iss": long}),
        json!({"scope": "key", "kid": long}),
        json!({"scope": "key", "kid": "k", "reason": long}),
        json!({"scope": "key", "kid": "k", "actor": long}),
    ] {
        let m = app
            .admin_post("/v1/revocations", &body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains("513 bytes") && m.contains("512"), "{m}");
    }
    // Exactly 512 bytes is fine.
    app.revoke(json!({"scope": "key", "kid": "k".repeat(512)}))
        .await;
    assert_eq!(app.backend.len(), 1);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let app = App::new();
    let pad = "a".repeat(veto_api::MAX_BODY_BYTES);
    let body = format!(r#"{{"scope":"key","kid":"k","reason":"{pad}"}}"#);
    for uri in [
        "/v1/revocations",
        "/v1/revocations/batch",
        "/v1/check",
        "/v1/peers",
    ] {
        let m = post_raw(&app, uri, body.clone())
            .await
            .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        assert!(m.contains("1048576"), "{m}");
    }
    // Also without a Content-Length, as a chunked upload would come.
    let stream = futures::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024]))),
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/revocations")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::from_stream(stream))
        .unwrap();
    app.send(req)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn a_batch_over_10000_items_is_refused_whole() {
    let app = App::new();
    let item = json!({"scope": "key", "kid": "k"});
    let over = json!(vec![item.clone(); veto_api::MAX_BATCH_ITEMS + 1]);
    let m = app
        .admin_post("/v1/revocations/batch", &over)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_items");
    assert!(m.contains("10000"), "{m}");
    app.admin_post("/v1/check", &json!(vec![json!({"kid": "k"}); 10_001]))
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "too_many_items");
    assert_nothing_stored(&app);

    let full = json!(vec![item; veto_api::MAX_BATCH_ITEMS]);
    let a = app.admin_post("/v1/revocations/batch", &full).await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(app.backend.len(), veto_api::MAX_BATCH_ITEMS);
}

#[tokio::test]
async fn one_bad_item_rejects_the_batch_and_names_its_index() {
    let app = App::new();
    let batch = json!([
        {"scope": "key", "kid": "k1"},
        {"scope": "key", "kid": "k2"},
        {"scope": "session"},
    ]);
    let m = app
        .admin_post("/v1/revocations/batch", &batch)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.starts_with("item 2: ") && m.contains("`sid`"), "{m}");

    let batch = json!([{"scope": "key", "kid": "k1"}, {"scope": "key", "kid": 7}]);
    let m = app
        .admin_post("/v1/revocations/batch", &batch)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.starts_with("item 1: "), "{m}");

    app.admin_post(
        "/v1/revocations/batch",
        &json!({"scope": "key", "kid": "k"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_nothing_stored(&app);
    assert_eq!(
        app.backend
            .revoke_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token() {
    let app = App::new();
    let body = json!({"scope": "key", "kid": "k"}).to_string();
    let calls = [
        (Method::POST, "/v1/revocations", body.clone()),
        (Method::POST, "/v1/revocations/batch", format!("[{body}]")),
        (Method::GET, "/v1/revocations", String::new()),
        (
            Method::POST,
            "/v1/peers",
            r#"{"addr":"10.0.0.1:7401"}"#.to_owned(),
        ),
        (Method::DELETE, "/v1/peers/x", String::new()),
    ];
    for (method, uri, body) in calls {
        for auth in [
            None,
            Some("wrong"),
            Some(""),
            Some(&ADMIN[..ADMIN.len() - 1]),
        ] {
            let a = app
                .call(method.clone(), uri, auth, body.clone().into_bytes())
                .await;
            a.error(StatusCode::UNAUTHORIZED, "unauthorized");
            let challenge = a.headers.get(header::WWW_AUTHENTICATE).unwrap();
            assert!(
                challenge.to_str().unwrap().starts_with("Bearer"),
                "{challenge:?}"
            );
        }
    }
    assert_nothing_stored(&app);
    assert!(app.backend.peers_is_empty());
}

#[tokio::test]
async fn oauth_clients_that_fail_authentication_get_invalid_client() {
    let app = App::new();
    for auth in [None, Some("wrong"), Some(&ADMIN[..ADMIN.len() - 1])] {
        let a = app
            .call(Method::POST, "/oauth2/revoke", auth, b"token=abc".to_vec())
            .await;
        // RFC 6749 section 5.2.
        a.error(StatusCode::UNAUTHORIZED, "invalid_client");
        let challenge = a.headers.get(header::WWW_AUTHENTICATE).unwrap();
        assert!(
            challenge.to_str().unwrap().starts_with("Basic"),
            "{challenge:?}"
        );
    }
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn an_empty_admin_token_disables_admin_endpoints() {
    let app = App::with_config(|mut c| {
        c.admin_token.clear();
        c
    });
    let a = app
        .call(
            Method::POST,
            "/v1/revocations",
            Some(""),
            br#"{"scope":"key","kid":"k"}"#.to_vec(),
        )
        .await;
    let m = a.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(m.contains("disabled"), "{m}");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn non_numeric_times_are_refused() {
    let app = App::new();
    for body in [
        json!({"scope": "subject", "sub": "a", "before": "yesterday"}),
        json!({"scope": "subject", "sub": "a", "before": -5}),
        json!({"scope": "subject", "sub": "a", "before": 1.5}),
        json!({"scope": "key", "kid": "k", "expires_at": "soon"}),
        json!({"scope": "key", "kid": "k", "expires_at": true}),
    ] {
        let m = app
            .admin_post("/v1/revocations", &body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains("must be Unix seconds"), "{m}");
    }
    let m = app
        .get("/v1/check?sub=a&iat=yesterday")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.contains("`iat`"), "{m}");
    let m = app
        .admin_post("/v1/check", &json!([{"sub": "a", "iat": "x"}]))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.starts_with("item 0") && m.contains("`iat`"), "{m}");
    let bad_exp = jwt(json!({}), json!({"sub": "a", "exp": "tomorrow"}));
    let m = app
        .get(&common::check_uri(&[("token", &bad_exp)]))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_token");
    assert!(m.contains("`exp`"), "{m}");
    assert_nothing_stored(&app);
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused() {
    let app = App::new();
    let m = app
        .admin_post(
            "/v1/revocations",
            &json!({"scope": "token", "jti": "j", "expires_at": START - 1}),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.contains("in the past"), "{m}");
    assert_nothing_stored(&app);
    // Now itself is not the past.
    app.revoke(json!({"scope": "token", "jti": "j", "expires_at": START}))
        .await;
}

#[tokio::test]
async fn malformed_jwts_are_400_on_check_and_401_on_auth() {
    let app = App::new();
    for token in ["a.b.c", "!!.e30.sig", "e30.WzFd.sig"] {
        let m = app
            .get(&common::check_uri(&[("token", token)]))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_token");
        assert!(m.starts_with("malformed JWT: JWT "), "{m}");
        let a = app.call(Method::GET, "/v1/auth", Some(token), vec![]).await;
        a.error(StatusCode::UNAUTHORIZED, "invalid_token");
        let challenge = a.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge
                .starts_with("Bearer error=\"invalid_token\", error_description=\"malformed JWT"),
            "{challenge}"
        );
    }
}

#[tokio::test]
async fn wrong_method_is_405_and_unknown_path_404() {
    let app = App::new();
    for (method, uri) in [
        (Method::DELETE, "/v1/check"),
        (Method::PUT, "/v1/revocations"),
        (Method::GET, "/v1/revocations/batch"),
        (Method::GET, "/oauth2/revoke"),
        (Method::POST, "/v1/status"),
        (Method::GET, "/v1/peers/x"),
    ] {
        let a = app.call(method.clone(), uri, Some(ADMIN), vec![]).await;
        let m = a.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert!(m.contains(method.as_str()), "{m}");
        // The JSON body keeps axum's `Allow` header.
        assert!(a.headers.contains_key(header::ALLOW), "{uri}");
    }
    for uri in ["/", "/v1", "/v2/check", "/v1/checks", "/v1/revocations/x/y"] {
        let m = app.get(uri).await.error(StatusCode::NOT_FOUND, "not_found");
        assert!(m.contains(uri), "{m}");
    }
}

#[tokio::test]
async fn storage_failure_is_503_and_says_nothing_was_stored() {
    let app = App::new();
    app.backend
        .fail_storage
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let m = app
        .admin_post("/v1/revocations", &json!({"scope": "key", "kid": "k"}))
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "storage_failed");
    assert!(
        m.contains("nothing was stored") && m.contains("disk full"),
        "{m}"
    );
    assert_nothing_stored(&app);
    assert!(!app.is_revoked(&[("kid", "k")]).await);
}
