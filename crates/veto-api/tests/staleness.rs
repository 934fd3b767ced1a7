//! The staleness bound over the in-memory node, whose origins a test makes
//! stale at will: what `/v1/auth` and `/v1/check` answer with no bound, a
//! closed or open one, a request tightening it, bad `max_staleness` values,
//! that revoked beats stale, that the watermarks are not read without a
//! bound, and the metric.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{Answer, App};
use serde_json::{json, Value};
use veto_api::StalePolicy;

const CLEAN: &str = "Bearer opaque-ok";
const GONE: &str = "Bearer opaque-gone";

async fn auth(app: &App, uri: &str, authorization: &str) -> Answer {
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::AUTHORIZATION, authorization);
    app.send(req.body(Body::empty()).unwrap()).await
}

fn stale_header(a: &Answer) -> Option<&str> {
    a.headers.get("veto-stale").map(|v| v.to_str().unwrap())
}

/// A router bounded at 3 s under `policy`, with `opaque-gone` revoked.
async fn bounded(policy: StalePolicy) -> App {
    let app = App::with_config(|c| c.with_max_staleness(Duration::from_secs(3), policy));
    app.revoke(json!({"scope": "token", "token": "opaque-gone"}))
        .await;
    app
}

/// eu-1 fresh, us-1 five seconds behind, ap-1 never heard of.
fn partitioned(app: &App) {
    app.backend
        .set_staleness(&[("eu-1", Some(0.4)), ("us-1", Some(5.0)), ("ap-1", None)]);
}

fn stale_json() -> Value {
    json!({"us-1": 5.0, "ap-1": null})
}

fn stale_of(v: &Value) -> Value {
    v["stale"].clone()
}

#[tokio::test]
async fn without_a_bound_nothing_is_stale_and_the_watermarks_are_not_read() {
    let app = App::new();
    partitioned(&app);
    let a = auth(&app, "/v1/auth", CLEAN).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(stale_header(&a), None);
    let v = app.check(&[("jti", "j")]).await;
    assert_eq!(v, json!({"revoked": false}));
    let a = app
        .call(
            Method::POST,
            "/v1/check",
            None,
            br#"[{"jti":"j"}]"#.to_vec(),
        )
        .await;
    assert_eq!(a.json(), json!({"results": [{"revoked": false}]}));
    assert_eq!(app.backend.origins_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn under_closed_a_clean_token_is_refused_while_stale_and_a_revoked_one_stays_revoked() {
    let app = bounded(StalePolicy::Closed).await;
    // Fresh enough: the bound changes nothing.
    app.backend
        .set_staleness(&[("eu-1", Some(0.4)), ("us-1", Some(2.9))]);
    let a = auth(&app, "/v1/auth", CLEAN).await;
    assert_eq!((a.status, stale_header(&a)), (StatusCode::OK, None));
    assert_eq!(app.check(&[("jti", "j")]).await, json!({"revoked": false}));

    partitioned(&app);
    let a = auth(&app, "/v1/auth", CLEAN).await;
    let message = a.error(StatusCode::SERVICE_UNAVAILABLE, "stale");
    assert!(message.contains("staleness bound"), "{message}");
    assert_eq!(stale_of(&a.json()), stale_json());
    assert_eq!(stale_header(&a), Some("us-1=5.0,ap-1=unknown"));
    assert!(a.headers.get(header::WWW_AUTHENTICATE).is_none());

    // Revoked beats stale, and so does a token that cannot be judged.
    let a = auth(&app, "/v1/auth", GONE).await;
    a.error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(stale_header(&a), None);
    let a = auth(&app, "/v1/auth", "Basic eDp5").await;
    a.error(StatusCode::UNAUTHORIZED, "invalid_token");

    // /v1/check says so whatever the answer, and never changes `revoked`.
    let v = app.check(&[("jti", "j")]).await;
    assert_eq!(v["revoked"], false);
    assert_eq!(stale_of(&v), stale_json());
    let v = app.check(&[("token", "opaque-gone")]).await;
    assert_eq!(v["revoked"], true);
    assert_eq!(v["scope"], "token");
    assert_eq!(stale_of(&v), stale_json());
    let a = app
        .call(
            Method::POST,
            "/v1/check",
            None,
            br#"[{"jti":"j"},{"token":"opaque-gone"}]"#.to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    assert_eq!(v["results"][0], json!({"revoked": false}));
    assert_eq!(v["results"][1]["revoked"], true);
    assert_eq!(stale_of(&v), stale_json());
}

#[tokio::test]
async fn under_open_a_clean_token_passes_with_veto_stale() {
    let app = bounded(StalePolicy::Open).await;
    partitioned(&app);
    let a = auth(&app, "/v1/auth/api/orders", CLEAN).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
    assert!(a.headers.get(header::CONTENT_TYPE).is_none());
    assert_eq!(stale_header(&a), Some("us-1=5.0,ap-1=unknown"));
    let a = auth(&app, "/v1/auth", GONE).await;
    a.error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(stale_of(&app.check(&[("jti", "j")]).await), stale_json());
}

#[tokio::test]
async fn a_request_tightens_the_bound_and_never_loosens_it() {
    // No bound configured: the request's holds, closed.
    let app = App::new();
    app.backend
        .set_staleness(&[("eu-1", Some(0.4)), ("us-1", Some(2.0))]);
    let a = auth(&app, "/v1/auth?max_staleness=1", CLEAN).await;
    a.error(StatusCode::SERVICE_UNAVAILABLE, "stale");
    assert_eq!(stale_of(&a.json()), json!({"us-1": 2.0}));
    let a = auth(&app, "/v1/auth?max_staleness=2.5", CLEAN).await;
    assert_eq!((a.status, stale_header(&a)), (StatusCode::OK, None));
    // Behind Envoy's prefix, with the original request's own query.
    let a = auth(&app, "/v1/auth/api/orders?page=2&max_staleness=1", CLEAN).await;
    a.error(StatusCode::SERVICE_UNAVAILABLE, "stale");
    let v = app.check(&[("jti", "j"), ("max_staleness", "1")]).await;
    assert_eq!(stale_of(&v), json!({"us-1": 2.0}));
    assert_eq!(
        app.check(&[("jti", "j"), ("max_staleness", "2.5")]).await,
        json!({"revoked": false})
    );
    let a = app
        .call(
            Method::POST,
            "/v1/check?max_staleness=1",
            None,
            br#"[{"jti":"j"}]"#.to_vec(),
        )
        .await;
    assert_eq!(stale_of(&a.json()), json!({"us-1": 2.0}));

    // A configured closed bound of 3 s: a looser request is held to it.
    let app = bounded(StalePolicy::Closed).await;
    partitioned(&app);
    let a = auth(&app, "/v1/auth?max_staleness=100", CLEAN).await;
    a.error(StatusCode::SERVICE_UNAVAILABLE, "stale");
    assert_eq!(
        stale_of(&app.check(&[("jti", "j"), ("max_staleness", "100")]).await),
        stale_json()
    );

    // A configured open bound keeps its policy when a request tightens it.
    let app = bounded(StalePolicy::Open).await;
    app.backend
        .set_staleness(&[("eu-1", Some(0.4)), ("us-1", Some(2.0))]);
    let a = auth(&app, "/v1/auth", CLEAN).await;
    assert_eq!((a.status, stale_header(&a)), (StatusCode::OK, None));
    let a = auth(&app, "/v1/auth?max_staleness=1", CLEAN).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(stale_header(&a), Some("us-1=2.0"));
}

#[tokio::test]
async fn a_bad_max_staleness_is_refused() {
    let app = App::new();
    for bad in ["0", "-1", "abc", "inf", "NaN", "", "1s"] {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("max_staleness", bad)
            .finish();
        let a = auth(&app, &format!("/v1/auth?{q}"), CLEAN).await;
        let m = a.error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains("`max_staleness`"), "{bad:?}: {m}");
        let a = app.get(&format!("/v1/check?jti=j&{q}")).await;
        a.error(StatusCode::BAD_REQUEST, "invalid_request");
        let a = app
            .call(
                Method::POST,
                &format!("/v1/check?{q}"),
                None,
                b"[]".to_vec(),
            )
            .await;
        a.error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let twice = "max_staleness=1&max_staleness=2";
    let m = auth(&app, &format!("/v1/auth?{twice}"), CLEAN)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.contains("twice"), "{m}");
    app.get(&format!("/v1/check?jti=j&{twice}"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    // The lookups of a batch go in its body: any other query is a mistake.
    let m = app
        .call(Method::POST, "/v1/check?jti=j", None, b"[]".to_vec())
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.contains("max_staleness"), "{m}");
    // A bad value is refused before anything is looked up.
    assert_eq!(app.backend.origins_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn decisions_taken_while_stale_are_counted_by_policy_and_endpoint() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let app = metrics::with_local_recorder(&recorder, || {
        App::with_config(|c| {
            c.with_prometheus(handle)
                .with_max_staleness(Duration::from_secs(3), StalePolicy::Open)
        })
    });
    partitioned(&app);
    auth(&app, "/v1/auth", CLEAN).await;
    auth(&app, "/v1/auth", CLEAN).await;
    app.check(&[("jti", "j")]).await;
    app.call(
        Method::POST,
        "/v1/check",
        None,
        br#"[{"jti":"a"},{"jti":"b"}]"#.to_vec(),
    )
    .await;
    // A request tightening the bound keeps the configured policy.
    auth(&app, "/v1/auth?max_staleness=1", CLEAN).await;
    let text = String::from_utf8(app.get("/metrics").await.body).unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    for line in [
        r#"veto_stale_decisions_total{policy="open",endpoint="auth"} 3"#,
        r#"veto_stale_decisions_total{policy="open",endpoint="check"} 3"#,
        r#"veto_stale_decisions_total{policy="closed",endpoint="auth"} 0"#,
    ] {
        assert!(has(line), "{line} in\n{text}");
    }
}
