//! The gateway check: one decision for `/v1/auth` (nginx `auth_request`,
//! Envoy `ext_authz` as an HTTP service, Traefik ForwardAuth) and for Envoy's
//! gRPC `ext_authz` (`envoy.service.auth.v3.Authorization/Check`, served by the
//! veto-grpc crate). [`GatewayAuth::decide`] computes it; each transport only
//! renders the [`AuthDecision`].
//!
//! It reads `Authorization: Bearer <token>` and lets the request through
//! (200, empty body) when the token is not revoked. It refuses it (401 with
//! `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`
//! and a JSON error body) when the token is revoked, missing or malformed, or
//! when the request carries more than one `Authorization` header: fail
//! closed, since the upstream might act on another one than the one checked.
//! A comma in the credentials counts as more than one header too, with the
//! same answer: a bearer token never holds one (RFC 6750 `b64token`), and it
//! is how a proxy joins repeated headers into one (RFC 9110 §5.3; Envoy hands
//! ext_authz services, HTTP and gRPC, `Bearer a,Bearer b`). A node that has not loaded its state answers 503
//! `unavailable`, never a possibly wrong "not revoked".
//!
//! On HTTP any method is accepted and any path under `/v1/auth/` routes here,
//! because Envoy forwards the original method and path behind a configured
//! prefix. The body is never read.
//!
//! Every decision is counted in `veto_lookups_total{endpoint="auth"}` and
//! `veto_lookup_seconds{endpoint="auth"}`, whichever transport asked: revoked
//! as `result="revoked"` (not in `veto_http_errors_total`: that is the check
//! doing its job), the other refusals as `result="error"` and in
//! `veto_http_errors_total{status}`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::auth::{bearer, BearerError};
use crate::backend::{Backend, Revoked};
use crate::check::check_token;
use crate::error::{code, count_error};
use crate::state::{AppState, LookupMetrics, Outcome};

/// What a node that has not loaded its state yet answers, on every path but
/// `/healthz` and `/metrics`.
pub const NOT_READY_MESSAGE: &str = "the node is still loading its state";

const REVOKED_MESSAGE: &str = "the token has been revoked";
const REVOKED_CHALLENGE: &str =
    "Bearer error=\"invalid_token\", error_description=\"the token has been revoked\"";
const REVOKED_BODY: &[u8] = br#"{"error":"invalid_token","message":"the token has been revoked"}"#;

/// What the gateway check decided about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// The token is not revoked: let the request through (200).
    Allow,
    /// The token is revoked (401 `invalid_token`).
    Revoked(Revoked),
    /// No token that can be judged: missing, more than one, not Bearer,
    /// empty, or a malformed JWT (401 `invalid_token`). Holds the reason.
    Invalid(String),
    /// The node cannot judge yet: it is still loading its state (503
    /// `unavailable`).
    Unavailable,
}

impl AuthDecision {
    /// Whether the request may go on to the upstream.
    pub fn is_allowed(&self) -> bool {
        matches!(self, AuthDecision::Allow)
    }

    /// The HTTP status of the answer: 200, 401 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthDecision::Allow => StatusCode::OK,
            AuthDecision::Revoked(_) | AuthDecision::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthDecision::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Why the request is refused, in words; empty when it is allowed.
    pub fn message(&self) -> &str {
        match self {
            AuthDecision::Allow => "",
            AuthDecision::Revoked(_) => REVOKED_MESSAGE,
            AuthDecision::Invalid(message) => message,
            AuthDecision::Unavailable => NOT_READY_MESSAGE,
        }
    }

    /// The headers of the answer besides its status: none when allowed;
    /// `Content-Type` on a refusal, and the `WWW-Authenticate` challenge on
    /// a 401.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let json = (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            AuthDecision::Allow => Vec::new(),
            AuthDecision::Revoked(_) => vec![
                (
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(REVOKED_CHALLENGE),
                ),
                json,
            ],
            AuthDecision::Invalid(message) => {
                vec![(header::WWW_AUTHENTICATE, challenge(message)), json]
            }
            AuthDecision::Unavailable => vec![json],
        }
    }

    /// The body of the answer: empty when allowed, else
    /// `{"error": "<code>", "message": "..."}`.
    pub fn body(&self) -> Bytes {
        let code = match self {
            AuthDecision::Allow => return Bytes::new(),
            AuthDecision::Revoked(_) => return Bytes::from_static(REVOKED_BODY),
            AuthDecision::Invalid(_) => code::INVALID_TOKEN,
            AuthDecision::Unavailable => code::UNAVAILABLE,
        };
        let body = serde_json::json!({"error": code, "message": self.message()});
        Bytes::from(body.to_string())
    }
}

impl IntoResponse for AuthDecision {
    fn into_response(self) -> Response {
        if self.is_allowed() {
            return StatusCode::OK.into_response();
        }
        let mut resp = (self.status(), self.body()).into_response();
        let headers = resp.headers_mut();
        for (name, value) in self.headers() {
            headers.insert(name, value);
        }
        resp
    }
}

/// A `WWW-Authenticate` challenge whose description is safe inside a quoted
/// string.
fn challenge(description: &str) -> HeaderValue {
    let clean: String = description
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect();
    HeaderValue::from_str(&format!(
        "Bearer error=\"invalid_token\", error_description=\"{clean}\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""))
}

/// The gateway check over a node: [`GatewayAuth::decide`] is the one place
/// that turns a request's headers into an [`AuthDecision`]. Cheap to clone.
#[derive(Clone)]
pub struct GatewayAuth {
    backend: Arc<dyn Backend>,
    metrics: Arc<LookupMetrics>,
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayAuth").finish_non_exhaustive()
    }
}

impl GatewayAuth {
    /// The check over `backend`. Its metrics are registered with the global
    /// `metrics` recorder here (the same series as `/v1/auth`'s), so install
    /// the recorder first.
    pub fn new(backend: Arc<dyn Backend>) -> GatewayAuth {
        GatewayAuth {
            backend,
            metrics: Arc::new(LookupMetrics::new("auth")),
        }
    }

    /// Decides on a request from its headers (only `Authorization` is
    /// read), and counts the decision.
    pub fn decide(&self, headers: &HeaderMap) -> AuthDecision {
        let start = Instant::now();
        let decision = self.judge(headers);
        let outcome = match &decision {
            AuthDecision::Allow => Outcome::Clean,
            AuthDecision::Revoked(_) => Outcome::Revoked,
            AuthDecision::Invalid(_) | AuthDecision::Unavailable => {
                count_error(decision.status());
                Outcome::Error
            }
        };
        self.metrics.record(outcome, start);
        decision
    }

    fn judge(&self, headers: &HeaderMap) -> AuthDecision {
        if !self.backend.ready() {
            return AuthDecision::Unavailable;
        }
        let token = match bearer(headers) {
            // A list: how a proxy joins repeated headers into one.
            Ok(token) if token.contains(',') => {
                return AuthDecision::Invalid(BearerError::Several.message().into())
            }
            Ok(token) => token,
            Err(e) => return AuthDecision::Invalid(e.message().into()),
        };
        match check_token(self.backend.as_ref(), token) {
            Ok(None) => AuthDecision::Allow,
            Ok(Some(hit)) => AuthDecision::Revoked(hit),
            Err(e) => AuthDecision::Invalid(format!("malformed JWT: {e}")),
        }
    }
}

/// `ANY /v1/auth` and `ANY /v1/auth/{*rest}`.
pub(crate) async fn auth(State(state): State<AppState>, req: Request) -> Response {
    state.gateway.decide(req.headers()).into_response()
}
