//! `GET /v1/filter`: the role it needs, the format it answers, the cursor it
//! was taken at, and 503 while the node is not ready.

mod common;

use std::sync::atomic::Ordering;

use axum::http::{Method, StatusCode};
use common::{App, ADMIN};
use serde_json::json;
use veto_api::tokens::{parse_tokens_file, tokens_file_entry};
use veto_api::{Role, Roles, TokenSet, TokenTable};
use veto_core::Check;
use veto_filter::{EdgeFilter, Verdict};

fn app() -> App {
    let tokens = format!(
        "{}{}",
        tokens_file_entry("edge", Roles::of(&[Role::Read]), "read-token"),
        tokens_file_entry("soc-bot", Roles::of(&[Role::Revoke]), "revoke-token"),
    );
    let table = TokenTable::new(Some(ADMIN), parse_tokens_file(&tokens).unwrap()).unwrap();
    App::with_config(|c| c.with_tokens(TokenSet::new(table)))
}

async fn fetch(app: &App, token: Option<&str>) -> common::Answer {
    app.call(Method::GET, "/v1/filter", token, Vec::new()).await
}

#[tokio::test]
async fn needs_the_read_role() {
    let app = app();
    fetch(&app, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    fetch(&app, Some("revoke-token"))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(fetch(&app, Some("read-token")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn answers_the_records_as_a_filter_with_its_cursor() {
    let app = app();
    app.revoke(json!({"scope": "token", "iss": "https://idp", "jti": "leak"}))
        .await;
    app.revoke(
        json!({"scope": "subject", "iss": "https://idp", "sub": "alice", "before": 1_699_999_000}),
    )
    .await;
    let a = fetch(&app, Some("read-token")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/octet-stream");
    let cursor = a.headers["veto-cursor"].to_str().unwrap().to_owned();
    let f = EdgeFilter::decode(&a.body).expect("a valid filter");
    assert_eq!(f.cursor(), cursor);
    assert_eq!(f.key_count(), 1);
    let leak = Check {
        iss: Some("https://idp"),
        jti: Some("leak"),
        ..Check::default()
    };
    assert_eq!(f.check(&leak), Verdict::Maybe);
    let clean = Check {
        jti: Some("fine"),
        ..leak
    };
    assert_eq!(f.check(&clean), Verdict::Clean);
    let alice = Check {
        iss: Some("https://idp"),
        sub: Some("alice"),
        iat: Some(1_699_998_000),
        ..Check::default()
    };
    assert!(matches!(f.check(&alice), Verdict::Revoked(c) if c.before == 1_699_999_000));

    // Unchanged feed: the same bytes. A new record: a new cursor and key.
    assert_eq!(fetch(&app, Some("read-token")).await.body, a.body);
    app.revoke(json!({"scope": "session", "sid": "s-9"})).await;
    let b = fetch(&app, Some("read-token")).await;
    assert_ne!(b.headers["veto-cursor"].to_str().unwrap(), cursor);
    let g = EdgeFilter::decode(&b.body).unwrap();
    assert_eq!(g.key_count(), 2);
    let sid = Check {
        iss: Some("https://other"),
        sid: Some("s-9"),
        ..Check::default()
    };
    assert_eq!(g.check(&sid), Verdict::Maybe);
}

#[tokio::test]
async fn not_ready_is_503() {
    let app = app();
    app.backend.ready.store(false, Ordering::SeqCst);
    fetch(&app, Some("read-token"))
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}
