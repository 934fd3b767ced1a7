//! Shared Signals: how each accepted event becomes a record, and replays.

mod common;
#[path = "events_support/mod.rs"]
mod support;

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use common::{jwt, App, DAY, START};
use serde_json::{json, Value};
use support::*;
use veto_core::{ScopeKind, Target};

/// The only record stored so far.
fn only_record(app: &App) -> veto_core::Record {
    let records = app.backend.records();
    assert_eq!(records.len(), 1, "{records:?}");
    records.into_iter().next().unwrap()
}

async fn audit(app: &App) -> Value {
    app.admin_get("/v1/revocations").await.json()
}

#[tokio::test]
async fn session_revoked_with_a_complex_subject_revokes_the_session() {
    let app = app();
    let payload = json!({
        "event_timestamp": START - 5,
        "initiating_entity": "policy",
        "reason_admin": {"en": "Landspeed policy violation", "de": "Landspeed-Richtlinienverstoss"},
    });
    let mut claims = set("set-1", SESSION_REVOKED, payload);
    claims["sub_id"] = json!({
        "format": "complex",
        "user": {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "alice"},
        "session": {"format": "opaque", "id": "sess-42"},
    });
    accept(&app, &sign(&claims)).await;

    let r = only_record(&app);
    assert_eq!(
        r.target,
        Target::Session {
            iss: Some("https://idp.example.com/".into()),
            sid: "sess-42".into()
        }
    );
    assert_eq!(r.actor, ISS_A);
    assert_eq!(
        r.reason,
        format!("{SESSION_REVOKED}: Landspeed policy violation")
    );
    assert_eq!(r.expires_at, START + DAY);
    assert!(
        app.is_revoked(&[("iss", "https://idp.example.com/"), ("sid", "sess-42")])
            .await
    );
    assert!(
        !app.is_revoked(&[("iss", "https://idp.example.com/"), ("sid", "sess-43")])
            .await
    );
    // The audit trail shows who sent it.
    let list = audit(&app).await;
    assert_eq!(list["records"][0]["actor"], ISS_A);
    assert_eq!(list["records"][0]["scope"], "session");
}

#[tokio::test]
async fn session_revoked_with_an_opaque_subject_takes_it_as_the_session_id() {
    let app = app();
    // The older CAEP form: the subject inside the event, named by subject_type.
    let payload =
        json!({"subject": {"subject_type": "opaque", "id": "dMTlD|1600802906337.16|16008.16"}});
    accept(&app, &sign(&set("set-1", SESSION_REVOKED, payload))).await;
    let r = only_record(&app);
    assert_eq!(
        r.target,
        Target::Session {
            iss: None,
            sid: "dMTlD|1600802906337.16|16008.16".into()
        }
    );
    assert_eq!(r.reason, SESSION_REVOKED);
}

#[tokio::test]
async fn session_revoked_for_a_user_cuts_off_their_tokens_at_the_event_time() {
    let app = app();
    let mut claims = set(
        "set-1",
        SESSION_REVOKED,
        json!({"event_timestamp": START - 100}),
    );
    claims["sub_id"] =
        json!({"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "alice"});
    accept(&app, &sign(&claims)).await;
    let r = only_record(&app);
    assert_eq!(r.target.kind(), ScopeKind::Subject);
    assert_eq!(r.target.before(), Some(START - 100));
    assert_eq!(r.target.iss(), Some("https://idp.example.com/"));

    let iss = ("iss", "https://idp.example.com/");
    let before = (START - 101).to_string();
    let after = (START - 100).to_string();
    assert!(
        app.is_revoked(&[iss, ("sub", "alice"), ("iat", &before)])
            .await
    );
    assert!(
        !app.is_revoked(&[iss, ("sub", "alice"), ("iat", &after)])
            .await
    );
}

#[tokio::test]
async fn credential_change_revoke_and_delete_cut_off_the_user_and_other_changes_are_ignored() {
    let app = app();
    for (i, change) in ["create", "update"].into_iter().enumerate() {
        let mut claims = set(
            &format!("ignored-{i}"),
            CREDENTIAL_CHANGE,
            json!({"credential_type": "password", "change_type": change}),
        );
        claims["sub_id"] = json!({"format": "email", "email": "bob@example.com"});
        accept(&app, &sign(&claims)).await;
    }
    assert_eq!(app.backend.len(), 0);
    assert_eq!(app.backend.revoke_calls.load(Ordering::SeqCst), 0);

    for (i, change) in ["revoke", "delete"].into_iter().enumerate() {
        let mut claims = set(
            &format!("applied-{i}"),
            CREDENTIAL_CHANGE,
            json!({"credential_type": "fido2-roaming", "change_type": change}),
        );
        // No event_timestamp: the SET's iat is the event time.
        claims["sub_id"] = json!({"format": "email", "email": format!("user{i}@example.com")});
        accept(&app, &sign(&claims)).await;
    }
    let mut records = app.backend.records();
    records.sort_by_key(|r| r.id);
    let subs: Vec<_> = records
        .iter()
        .map(|r| match &r.target {
            Target::Subject { iss, sub, before } => (iss.clone(), sub.clone(), *before),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        subs,
        [
            (None, "user0@example.com".to_owned(), START - 10),
            (None, "user1@example.com".to_owned(), START - 10),
        ]
    );
    // An email subject has no issuer: tokens of every issuer are cut off.
    let iat = (START - 11).to_string();
    assert!(
        app.is_revoked(&[
            ("iss", "https://any"),
            ("sub", "user0@example.com"),
            ("iat", &iat)
        ])
        .await
    );

    let no_change_type = set(
        "bad",
        CREDENTIAL_CHANGE,
        json!({"credential_type": "password"}),
    );
    let mut claims = no_change_type;
    claims["sub_id"] = json!({"format": "email", "email": "x@example.com"});
    let a = post(&app, &sign(&claims)).await;
    let d = set_error(&a, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(d.contains("change_type"), "{d}");
}

#[tokio::test]
async fn token_revoked_revokes_one_jwt_by_jti_or_an_opaque_token_by_hash() {
    let app = app();
    let by_jti =
        json!({"subject": {"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "tok-1"}});
    accept(&app, &sign(&set("set-1", TOKEN_REVOKED, by_jti))).await;
    let r = only_record(&app);
    assert_eq!(
        r.target,
        Target::Token {
            iss: Some("https://idp.example.com/".into()),
            jti: "tok-1".into()
        }
    );
    let token = jwt(
        json!({"alg": "RS256"}),
        json!({"iss": "https://idp.example.com/", "jti": "tok-1"}),
    );
    assert!(app.is_revoked(&[("token", &token)]).await);

    let opaque = "2YotnFZFEjr1zCsicMWpAA";
    let mut claims = set("set-2", TOKEN_REVOKED, json!({}));
    claims["sub_id"] = json!({"format": "opaque", "id": opaque});
    accept(&app, &sign(&claims)).await;
    let draft = json!({"subject": {
        "subject_type": "oauth_token",
        "token_type": "refresh_token",
        "token_identifier_alg": "plain",
        "token": "tGzv3JOkF0XG5Qx2TlKWIA",
    }});
    accept(&app, &sign(&set("set-3", TOKEN_REVOKED, draft))).await;
    let hashes: Vec<_> = app
        .backend
        .records()
        .into_iter()
        .filter(|r| matches!(r.target, Target::TokenHash { .. }))
        .map(|r| r.target)
        .collect();
    assert_eq!(hashes.len(), 2);
    assert!(hashes.contains(&Target::opaque_token(opaque)));
    assert!(app.is_revoked(&[("token", opaque)]).await);
    assert!(app.is_revoked(&[("token", "tGzv3JOkF0XG5Qx2TlKWIA")]).await);
    assert!(!app.is_revoked(&[("token", "another-token")]).await);
    // The audit trail never holds the token itself.
    assert!(!audit(&app).await.to_string().contains(opaque));
}

#[tokio::test]
async fn tokens_revoked_cuts_off_a_user_or_a_client() {
    let app = app();
    let user = json!({"subject": {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "carol"}});
    accept(&app, &sign(&set("set-1", TOKENS_REVOKED, user))).await;
    let client = json!({"subject": {"subject_type": "oauth_client", "client_id": "mobile-app"}, "event_timestamp": START - 50});
    accept(&app, &sign(&set("set-2", TOKENS_REVOKED, client))).await;
    let mut records = app.backend.records();
    records.sort_by_key(|r| r.id);
    assert_eq!(
        records[0].target,
        Target::Subject {
            iss: Some("https://idp.example.com/".into()),
            sub: "carol".into(),
            before: START - 10,
        }
    );
    assert_eq!(
        records[1].target,
        Target::Client {
            iss: None,
            client_id: "mobile-app".into(),
            before: START - 50,
        }
    );
    let iat = (START - 60).to_string();
    assert!(
        app.is_revoked(&[("client_id", "mobile-app"), ("iat", &iat)])
            .await
    );
}

#[tokio::test]
async fn every_event_of_a_set_is_applied_and_unknown_types_are_ignored() {
    let app = app();
    let claims = json!({
        "iss": ISS_A, "aud": [AUD, "someone-else"], "iat": START, "jti": "multi",
        "toe": START - 30,
        "events": {
            TOKEN_REVOKED: {"subject": {"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "t9"}},
            TOKENS_REVOKED: {"subject": {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "dave"}},
            "https://schemas.openid.net/secevent/caep/event-type/assurance-level-change": {"current_level": "nist-aal2"},
        },
    });
    accept(&app, &sign(&claims)).await;
    assert_eq!(app.backend.len(), 2);
    assert_eq!(
        app.backend.revoke_calls.load(Ordering::SeqCst),
        1,
        "one batch"
    );
    // Without an event_timestamp, the SET's toe is the event time.
    assert!(app
        .backend
        .records()
        .iter()
        .any(|r| r.target.before() == Some(START - 30)));

    let only_unknown = set(
        "unknown",
        "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change",
        json!({"previous_status": "compliant", "current_status": "not-compliant"}),
    );
    accept(&app, &sign(&only_unknown)).await;
    assert_eq!(app.backend.len(), 2);
}

#[tokio::test]
async fn an_event_time_far_ahead_of_the_clock_is_held_to_a_few_minutes_ahead() {
    let app = app();
    let payload = json!({
        "subject": {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "erin"},
        "event_timestamp": START + 10 * 365 * DAY,
    });
    accept(&app, &sign(&set("future", TOKENS_REVOKED, payload))).await;
    let r = only_record(&app);
    assert_eq!(r.target.before(), Some(START + 300));
    assert_eq!(r.expires_at, START + 300 + DAY);
}

#[tokio::test]
async fn a_replayed_set_is_accepted_once_per_issuer_and_forgotten_after_the_window() {
    let app = app();
    let payload =
        json!({"subject": {"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "t1"}});
    let token = sign(&set("same-jti", TOKEN_REVOKED, payload.clone()));
    accept(&app, &token).await;
    accept(&app, &token).await;
    // Re-signed, same issuer and jti: still a replay.
    accept(
        &app,
        &sign(&set("same-jti", TOKEN_REVOKED, payload.clone())),
    )
    .await;
    assert_eq!(app.backend.len(), 1);
    assert_eq!(app.backend.revoke_calls.load(Ordering::SeqCst), 1);

    // The same jti from another transmitter is another SET.
    let mut from_b = set("same-jti", TOKEN_REVOKED, payload.clone());
    from_b["iss"] = json!(ISS_B);
    let token_b = sign_with(
        &ec_b(),
        jsonwebtoken::Algorithm::ES256,
        Some(KID_B),
        &from_b,
    );
    accept(&app, &token_b).await;
    assert_eq!(app.backend.len(), 2);
    assert_eq!(
        app.backend
            .records()
            .iter()
            .filter(|r| r.actor == ISS_B)
            .count(),
        1
    );

    // Past the window the jti is forgotten: a replay stores a duplicate
    // record, which revokes nothing new.
    app.advance(REPLAY_WINDOW);
    accept(&app, &token).await;
    assert_eq!(app.backend.len(), 3);
}

#[tokio::test]
async fn a_set_that_failed_to_store_is_not_remembered_and_can_be_retried() {
    let app = app();
    let payload =
        json!({"subject": {"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "t1"}});
    let token = sign(&set("retry-me", TOKEN_REVOKED, payload));
    app.backend.fail_storage.store(true, Ordering::SeqCst);
    let a = post(&app, &token).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()["err"], "storage_failed");
    app.backend.fail_storage.store(false, Ordering::SeqCst);
    accept(&app, &token).await;
    assert_eq!(app.backend.len(), 1);
}

#[tokio::test]
async fn without_transmitters_every_set_is_refused() {
    let app = App::new();
    let payload = json!({"subject": {"format": "jwt_id", "iss": "i", "jti": "t1"}});
    let a = post(&app, &sign(&set("x", TOKEN_REVOKED, payload))).await;
    set_error(&a, StatusCode::BAD_REQUEST, "invalid_issuer");
    assert_eq!(app.backend.len(), 0);
}
