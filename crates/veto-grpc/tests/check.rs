//! The `Check` RPC over a real socket with tonic's own client, against a
//! node faked in memory: each case gets the answer `/v1/auth` gives for the
//! same `Authorization` headers (status, challenge, body), a node that is
//! still loading answers `UNAVAILABLE` with 503, and a stale one answers as
//! `/v1/auth` does under either staleness policy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderMap as RawHeaders, HeaderValue as RawHeader, HeaderValueOption,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use http_body_util::BodyExt as _;
use sha2::{Digest as _, Sha256};
use tonic::transport::Channel;
use tower::ServiceExt as _;
use veto_api::{
    ApiConfig, Backend, BackendError, GatewayAuth, NodeInfo, PeerView, Revoked, StaleBound,
    StalePolicy, StatusView,
};
use veto_core::receipt::OriginView;
use veto_core::{AuditQuery, Check, Record, Revocation, ScopeKind};

const GONE: &str = "opaque-gone";

/// A node whose only revoked token is [`GONE`].
struct Fake {
    ready: AtomicBool,
    /// Its freshness watermarks.
    origins: Mutex<Vec<OriginView>>,
}

#[async_trait]
impl Backend for Fake {
    fn node(&self) -> NodeInfo {
        unimplemented!("the gateway check never asks")
    }
    async fn revoke(&self, _: Vec<Revocation>) -> Result<Vec<Record>, BackendError> {
        unimplemented!("the gateway check never revokes")
    }
    fn check(&self, check: &Check<'_>) -> Option<Revoked> {
        let gone: [u8; 32] = Sha256::digest(GONE.as_bytes()).into();
        (check.token_sha256 == Some(gone)).then(|| Revoked {
            scope: ScopeKind::Token,
            id: "0000000000000001-1".into(),
            reason: "leaked".into(),
            revoked_at: 1_700_000_000,
        })
    }
    async fn audit(&self, _: AuditQuery) -> Result<Vec<Record>, BackendError> {
        unimplemented!("the gateway check never audits")
    }
    fn status(&self) -> StatusView {
        unimplemented!("the gateway check never asks")
    }
    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    fn peers(&self) -> Vec<PeerView> {
        Vec::new()
    }
    async fn add_peer(&self, _: String, _: Option<String>) -> Result<PeerView, BackendError> {
        unimplemented!("the gateway check never adds peers")
    }
    async fn remove_peer(&self, _: &str) -> Result<(), BackendError> {
        unimplemented!("the gateway check never removes peers")
    }
    fn origins(&self) -> Vec<OriginView> {
        self.origins.lock().unwrap().clone()
    }
}

struct Server {
    client: AuthorizationClient<Channel>,
    slot: Arc<OnceLock<GatewayAuth>>,
    backend: Arc<Fake>,
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let slot = Arc::new(OnceLock::new());
    tokio::spawn(veto_grpc::serve(
        listener,
        Arc::clone(&slot),
        std::future::pending(),
    ));
    let client = AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let backend = Arc::new(Fake {
        ready: AtomicBool::new(true),
        origins: Mutex::new(Vec::new()),
    });
    Server {
        client,
        slot,
        backend,
    }
}

impl Server {
    fn load(&self) {
        let backend: Arc<dyn Backend> = self.backend.clone();
        self.slot.set(GatewayAuth::new(backend)).unwrap();
    }

    /// Loads the check held to a staleness bound.
    fn load_bounded(&self, bound: StaleBound) {
        let backend: Arc<dyn Backend> = self.backend.clone();
        let gateway = GatewayAuth::new(backend).with_max_staleness(bound);
        self.slot.set(gateway).unwrap();
    }

    async fn check(&self, request: CheckRequest) -> CheckResponse {
        self.client
            .clone()
            .check(request)
            .await
            .unwrap()
            .into_inner()
    }
}

/// A request as Envoy sends it by default: headers in a map, repeated ones
/// joined with a comma.
fn joined(authorization: &[&str]) -> CheckRequest {
    let mut headers = HashMap::from([(":path".to_owned(), "/api/orders".to_owned())]);
    if !authorization.is_empty() {
        headers.insert("authorization".into(), authorization.join(","));
    }
    with_http(HttpRequest {
        headers,
        ..HttpRequest::default()
    })
}

/// A request as Envoy sends it with `encode_raw_headers: true`: one entry per
/// header line.
fn raw(authorization: &[&str]) -> CheckRequest {
    let headers = authorization
        .iter()
        .map(|v| RawHeader {
            key: "authorization".into(),
            raw_value: v.as_bytes().to_vec(),
            ..RawHeader::default()
        })
        .chain([RawHeader {
            key: ":path".into(),
            raw_value: b"/api/orders".to_vec(),
            ..RawHeader::default()
        }])
        .collect();
    with_http(HttpRequest {
        header_map: Some(RawHeaders { headers }),
        ..HttpRequest::default()
    })
}

fn with_http(http: HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// What `/v1/auth` answers for these `Authorization` headers: status,
/// `WWW-Authenticate`, `Content-Type`, `Veto-Stale` and body.
async fn http_answer(backend: Arc<Fake>, authorization: &[&str]) -> Answer {
    http_answer_with(backend, ApiConfig::new("admin-token"), authorization).await
}

async fn http_answer_with(backend: Arc<Fake>, config: ApiConfig, authorization: &[&str]) -> Answer {
    let backend: Arc<dyn Backend> = backend;
    let app = veto_api::router(backend, config);
    let mut req = axum::http::Request::get("/v1/auth/api/orders");
    for v in authorization {
        req = req.header("authorization", *v);
    }
    let resp = app
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (www_authenticate, content_type) = (header("www-authenticate"), header("content-type"));
    let veto_stale = header("veto-stale");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        www_authenticate,
        content_type,
        veto_stale,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// One answer, over either transport.
#[derive(Debug, PartialEq, Clone)]
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    veto_stale: Option<String>,
    body: String,
}

/// The one value of header `name` among Envoy header options.
fn envoy_header(headers: &[HeaderValueOption], name: &str) -> Option<String> {
    let mut values = headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .filter(|h| h.key == name);
    let value = values.next().map(|h| h.value.clone());
    assert!(values.next().is_none(), "{name} twice");
    value
}

/// The gRPC status code, and the answer Envoy would give the client.
fn grpc_answer(resp: &CheckResponse) -> (i32, Answer) {
    let code = resp.status.as_ref().map_or(-1, |s| s.code);
    let answer = match resp.http_response.as_ref() {
        Some(HttpResponse::OkResponse(ok)) => {
            // Only Veto-Stale, on the upstream request, and nothing for the
            // client's answer.
            assert!(ok.headers.len() <= 1 && ok.headers_to_remove.is_empty());
            assert!(ok.response_headers_to_add.is_empty());
            Answer {
                status: 200,
                www_authenticate: None,
                content_type: None,
                veto_stale: envoy_header(&ok.headers, "veto-stale"),
                body: String::new(),
            }
        }
        Some(HttpResponse::DeniedResponse(denied)) => {
            let header = |name: &str| envoy_header(&denied.headers, name);
            Answer {
                status: u16::try_from(denied.status.as_ref().unwrap().code).unwrap(),
                www_authenticate: header("www-authenticate"),
                content_type: header("content-type"),
                veto_stale: header("veto-stale"),
                body: denied.body.clone(),
            }
        }
        other => panic!("unexpected http_response {other:?}"),
    };
    (code, answer)
}

const OK: i32 = tonic::Code::Ok as i32;
const UNAUTHENTICATED: i32 = tonic::Code::Unauthenticated as i32;
const UNAVAILABLE: i32 = tonic::Code::Unavailable as i32;

#[tokio::test]
async fn every_answer_is_the_one_v1_auth_gives() {
    let s = server().await;
    s.load();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["Bearer opaque-ok"], OK, ""),
        (&["bearer opaque-ok"], OK, ""),
        (&["Bearer eyJhbGciOiJub25lIn0.eyJqdGkiOiJvayJ9.x"], OK, ""),
        (&["Bearer opaque-gone"], UNAUTHENTICATED, "revoked"),
        (&[], UNAUTHENTICATED, "no Authorization header"),
        (
            &["Basic dXNlcjpwYXNz"],
            UNAUTHENTICATED,
            "not a Bearer token",
        ),
        (&["Bearer "], UNAUTHENTICATED, "empty"),
        (&["Bearer x.\"y.z"], UNAUTHENTICATED, "malformed JWT"),
        (
            &["Bearer opaque-ok", "Bearer opaque-gone"],
            UNAUTHENTICATED,
            "more than one Authorization header",
        ),
        (
            &["Bearer opaque-gone", "Bearer opaque-ok"],
            UNAUTHENTICATED,
            "more than one Authorization header",
        ),
        (
            &["Bearer opaque-ok", "Bearer opaque-ok"],
            UNAUTHENTICATED,
            "more than one Authorization header",
        ),
        (
            &["Bearer opaque-ok,opaque-gone"],
            UNAUTHENTICATED,
            "more than one Authorization header",
        ),
    ];
    for &(authorization, code, why) in cases {
        let http = http_answer(Arc::clone(&s.backend), authorization).await;
        // Joined with a comma or sent one by one, the headers get /v1/auth's
        // answer to the same headers as separate lines.
        for (shape, request) in [
            ("joined", joined(authorization)),
            ("raw", raw(authorization)),
        ] {
            let resp = s.check(request).await;
            let (got_code, grpc) = grpc_answer(&resp);
            assert_eq!(got_code, code, "{authorization:?} {shape}");
            assert_eq!(grpc, http, "{authorization:?} {shape}");
            let message = &resp.status.as_ref().unwrap().message;
            assert!(
                message.contains(why),
                "{authorization:?} {shape}: {message}"
            );
        }
        if code != OK {
            assert_eq!(http.status, 401, "{authorization:?}");
            let challenge = http.www_authenticate.as_deref().unwrap();
            assert!(challenge.starts_with("Bearer error=\"invalid_token\""));
            assert!(http.body.contains(why), "{authorization:?}: {}", http.body);
        }
    }
}

#[tokio::test]
async fn a_node_still_loading_answers_unavailable() {
    let s = server().await;
    let expected = Answer {
        status: 503,
        www_authenticate: None,
        content_type: Some("application/json".into()),
        veto_stale: None,
        body: r#"{"error":"unavailable","message":"the node is still loading its state"}"#.into(),
    };
    // Before the state is loaded, there is no gateway check at all.
    for request in [joined(&["Bearer opaque-ok"]), joined(&[])] {
        assert_eq!(
            grpc_answer(&s.check(request).await),
            (UNAVAILABLE, expected.clone())
        );
    }
    // A node that says it is not ready gets the same answer over HTTP too.
    s.backend.ready.store(false, Ordering::SeqCst);
    s.load();
    let http = http_answer(Arc::clone(&s.backend), &["Bearer opaque-ok"]).await;
    assert_eq!(http, expected.clone());
    let resp = s.check(joined(&["Bearer opaque-ok"])).await;
    assert_eq!(grpc_answer(&resp), (UNAVAILABLE, expected.clone()));

    s.backend.ready.store(true, Ordering::SeqCst);
    let resp = s.check(joined(&["Bearer opaque-ok"])).await;
    assert_eq!(grpc_answer(&resp).0, OK);
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_not_judged() {
    let s = server().await;
    s.load();
    let mut request = joined(&["Bearer opaque-ok"]);
    if let Some(http) = request
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.headers
            .insert("cookie".into(), "x".repeat(veto_grpc::MAX_MESSAGE_BYTES));
    }
    let err = s.client.clone().check(request).await.unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    // The server is still there for the next one.
    let resp = s.check(joined(&["Bearer opaque-ok"])).await;
    assert_eq!(grpc_answer(&resp).0, OK);
}

#[tokio::test]
async fn no_http_attributes_is_a_missing_token() {
    let s = server().await;
    s.load();
    let resp = s.check(CheckRequest::default()).await;
    let (code, answer) = grpc_answer(&resp);
    assert_eq!(code, UNAUTHENTICATED);
    assert_eq!(answer.status, 401);
    assert!(
        answer.body.contains("no Authorization header"),
        "{}",
        answer.body
    );
}

/// eu is five seconds behind, ap never heard of.
fn stale_origins() -> Vec<OriginView> {
    let origin = |name: &str, staleness_s| OriginView {
        origin: "00000000000000ab".into(),
        name: name.into(),
        region: name.into(),
        complete_through: None,
        last_heard: None,
        staleness_s,
    };
    vec![
        origin("us", Some(0.2)),
        origin("eu", Some(5.0)),
        origin("ap", None),
    ]
}

#[tokio::test]
async fn a_stale_node_answers_as_v1_auth_does_under_either_policy() {
    const STALE: &str = "eu=5.0,ap=unknown";
    for policy in [StalePolicy::Closed, StalePolicy::Open] {
        let s = server().await;
        *s.backend.origins.lock().unwrap() = stale_origins();
        let bound = StaleBound::new(Duration::from_secs(3), policy);
        s.load_bounded(bound);
        let config = ApiConfig::new("admin-token").with_max_staleness(bound.max, bound.policy);
        for (authorization, code) in [
            (
                "Bearer opaque-ok",
                match policy {
                    StalePolicy::Closed => UNAVAILABLE,
                    StalePolicy::Open => OK,
                },
            ),
            // Revoked beats stale.
            ("Bearer opaque-gone", UNAUTHENTICATED),
        ] {
            let http =
                http_answer_with(Arc::clone(&s.backend), config.clone(), &[authorization]).await;
            let resp = s.check(joined(&[authorization])).await;
            let (got_code, grpc) = grpc_answer(&resp);
            assert_eq!(got_code, code, "{policy:?} {authorization}");
            assert_eq!(grpc, http, "{policy:?} {authorization}");
            match (code, policy) {
                (UNAUTHENTICATED, _) => assert_eq!(http.veto_stale, None),
                (_, StalePolicy::Closed) => {
                    assert_eq!(http.status, 503);
                    assert_eq!(http.veto_stale.as_deref(), Some(STALE));
                    let body: serde_json::Value = serde_json::from_str(&http.body).unwrap();
                    assert_eq!(body["error"], "stale");
                    assert_eq!(body["stale"], serde_json::json!({"eu": 5.0, "ap": null}));
                }
                (_, StalePolicy::Open) => {
                    assert_eq!(http.status, 200);
                    assert_eq!(http.veto_stale.as_deref(), Some(STALE));
                }
            }
        }
        // Fresh again: nothing said.
        *s.backend.origins.lock().unwrap() = stale_origins().into_iter().take(1).collect();
        let resp = s.check(joined(&["Bearer opaque-ok"])).await;
        let (code, answer) = grpc_answer(&resp);
        assert_eq!((code, answer.veto_stale), (OK, None));
    }
}
