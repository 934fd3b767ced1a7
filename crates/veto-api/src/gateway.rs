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
//! With a staleness bound (configured, or `?max_staleness=SECS` in the query
//! of the URL the gateway asks, such as `proxy_pass
//! http://veto/v1/auth?max_staleness=5`), a token found not revoked while an
//! origin is staler than the bound is refused with 503 `stale` under the
//! `closed` policy, or let through with `Veto-Stale` under `open` (see
//! [`crate::stale`]). Every other query parameter is ignored: Envoy passes
//! the original request's query on behind the prefix. A `max_staleness` that
//! is not a positive number is 400 `invalid_request`.
//!
//! Every decision is counted in `veto_lookups_total{endpoint="auth"}` and
//! `veto_lookup_seconds{endpoint="auth"}`, whichever transport asked: revoked
//! as `result="revoked"` (not in `veto_http_errors_total`: that is the check
//! doing its job), the other refusals (a stale one included) as
//! `result="error"` and in `veto_http_errors_total{status}`; a decision
//! taken while stale also in `veto_stale_decisions_total{endpoint="auth"}`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::auth::{bearer, BearerError};
use crate::backend::{Backend, Revoked};
use crate::check::check_token;
use crate::error::{code, count_error};
use crate::stale::{self, Stale, StaleBound, StaleMetrics, StalePolicy, STALE_HEADER};
use crate::state::{AppState, LookupMetrics, Outcome};

/// What a node that has not loaded its state yet answers, on every path but
/// `/healthz` and `/metrics`.
pub const NOT_READY_MESSAGE: &str = "the node is still loading its state";

const REVOKED_MESSAGE: &str = "the token has been revoked";
const REVOKED_CHALLENGE: &str =
    "Bearer error=\"invalid_token\", error_description=\"the token has been revoked\"";
const REVOKED_BODY: &[u8] = br#"{"error":"invalid_token","message":"the token has been revoked"}"#;
const STALE_MESSAGE: &str =
    "this node may be missing recent revocations: an origin is staler than the staleness bound";

/// What the gateway check decided about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// The token is not revoked: let the request through (200).
    Allow,
    /// The token is not revoked but origins are staler than the bound, and
    /// the policy is `open`: let the request through (200), with
    /// `Veto-Stale` naming them.
    AllowStale(Stale),
    /// The token is revoked (401 `invalid_token`), stale or not.
    Revoked(Revoked),
    /// No token that can be judged: missing, more than one, not Bearer,
    /// empty, or a malformed JWT (401 `invalid_token`). Holds the reason.
    Invalid(String),
    /// The token is not revoked but origins are staler than the bound, and
    /// the policy is `closed` (503 `stale`).
    Stale(Stale),
    /// The request asks for something that cannot be (400
    /// `invalid_request`): a `max_staleness` that is not a positive number.
    BadRequest(String),
    /// The node cannot judge yet: it is still loading its state (503
    /// `unavailable`).
    Unavailable,
}

impl AuthDecision {
    /// Whether the request may go on to the upstream.
    pub fn is_allowed(&self) -> bool {
        matches!(self, AuthDecision::Allow | AuthDecision::AllowStale(_))
    }

    /// The HTTP status of the answer: 200, 400, 401 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthDecision::Allow | AuthDecision::AllowStale(_) => StatusCode::OK,
            AuthDecision::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthDecision::Revoked(_) | AuthDecision::Invalid(_) => StatusCode::UNAUTHORIZED,
            AuthDecision::Stale(_) | AuthDecision::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Why the request is refused, in words; empty when it is allowed.
    pub fn message(&self) -> &str {
        match self {
            AuthDecision::Allow | AuthDecision::AllowStale(_) => "",
            AuthDecision::Revoked(_) => REVOKED_MESSAGE,
            AuthDecision::Invalid(message) | AuthDecision::BadRequest(message) => message,
            AuthDecision::Stale(_) => STALE_MESSAGE,
            AuthDecision::Unavailable => NOT_READY_MESSAGE,
        }
    }

    /// The origins staler than the bound, when the decision was taken while
    /// some were.
    pub fn stale(&self) -> Option<&Stale> {
        match self {
            AuthDecision::AllowStale(stale) | AuthDecision::Stale(stale) => Some(stale),
            _ => None,
        }
    }

    /// The headers of the answer besides its status: none when allowed,
    /// `Veto-Stale` when allowed while stale; `Content-Type` on a refusal,
    /// the `WWW-Authenticate` challenge on a 401 and `Veto-Stale` on a
    /// stale 503.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let json = (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let stale = |s: &Stale| (HeaderName::from_static(STALE_HEADER), s.header_value());
        match self {
            AuthDecision::Allow => Vec::new(),
            AuthDecision::AllowStale(s) => vec![stale(s)],
            AuthDecision::Stale(s) => vec![json, stale(s)],
            AuthDecision::BadRequest(_) => vec![json],
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
    /// `{"error": "<code>", "message": "..."}`, with `"stale": {"<name>":
    /// secs|null}` on a stale refusal.
    pub fn body(&self) -> Bytes {
        let code = match self {
            AuthDecision::Allow | AuthDecision::AllowStale(_) => return Bytes::new(),
            AuthDecision::Revoked(_) => return Bytes::from_static(REVOKED_BODY),
            AuthDecision::Stale(stale) => {
                let body = serde_json::json!({
                    "error": code::STALE,
                    "message": STALE_MESSAGE,
                    "stale": stale,
                });
                return Bytes::from(body.to_string());
            }
            AuthDecision::Invalid(_) => code::INVALID_TOKEN,
            AuthDecision::BadRequest(_) => code::INVALID_REQUEST,
            AuthDecision::Unavailable => code::UNAVAILABLE,
        };
        let body = serde_json::json!({"error": code, "message": self.message()});
        Bytes::from(body.to_string())
    }
}

impl IntoResponse for AuthDecision {
    fn into_response(self) -> Response {
        if let AuthDecision::Allow = self {
            return StatusCode::OK.into_response();
        }
        let mut resp = if self.is_allowed() {
            // No body, so no Content-Type.
            StatusCode::OK.into_response()
        } else {
            (self.status(), self.body()).into_response()
        };
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
    stale_metrics: Arc<StaleMetrics>,
    bound: Option<StaleBound>,
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
            stale_metrics: Arc::new(StaleMetrics::new("auth")),
            bound: None,
        }
    }

    /// Holds every decision to this staleness bound (see [`crate::stale`]).
    pub fn with_max_staleness(mut self, bound: StaleBound) -> GatewayAuth {
        self.bound = Some(bound);
        self
    }

    /// Decides on a request from its headers (only `Authorization` is
    /// read), and counts the decision.
    pub fn decide(&self, headers: &HeaderMap) -> AuthDecision {
        self.decide_within(headers, None)
    }

    /// [`GatewayAuth::decide`], holding this request to `max_staleness` too
    /// when it is tighter than the configured bound (or there is none: then
    /// under the `closed` policy).
    pub fn decide_within(
        &self,
        headers: &HeaderMap,
        max_staleness: Option<Duration>,
    ) -> AuthDecision {
        let start = Instant::now();
        let decision = self.judge(headers, max_staleness);
        self.count(&decision, start);
        decision
    }

    /// Decides on an HTTP request: its headers, and `max_staleness` from its
    /// query.
    pub(crate) fn decide_http(&self, headers: &HeaderMap, query: Option<&str>) -> AuthDecision {
        match requested_bound(query) {
            Ok(max_staleness) => self.decide_within(headers, max_staleness),
            Err(message) => {
                let decision = AuthDecision::BadRequest(message);
                self.count(&decision, Instant::now());
                decision
            }
        }
    }

    fn count(&self, decision: &AuthDecision, start: Instant) {
        let outcome = match decision {
            AuthDecision::Allow | AuthDecision::AllowStale(_) => Outcome::Clean,
            AuthDecision::Revoked(_) => Outcome::Revoked,
            AuthDecision::Invalid(_)
            | AuthDecision::Stale(_)
            | AuthDecision::BadRequest(_)
            | AuthDecision::Unavailable => {
                count_error(decision.status());
                Outcome::Error
            }
        };
        self.metrics.record(outcome, start);
    }

    fn judge(&self, headers: &HeaderMap, max_staleness: Option<Duration>) -> AuthDecision {
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
            // Only a clean answer depends on what may not have arrived yet.
            Ok(None) => match stale::judge(self.backend.as_ref(), self.bound, max_staleness) {
                None => AuthDecision::Allow,
                Some((stale, policy)) => {
                    self.stale_metrics.count(policy, 1);
                    match policy {
                        StalePolicy::Closed => AuthDecision::Stale(stale),
                        StalePolicy::Open => AuthDecision::AllowStale(stale),
                    }
                }
            },
            Ok(Some(hit)) => AuthDecision::Revoked(hit),
            Err(e) => AuthDecision::Invalid(format!("malformed JWT: {e}")),
        }
    }
}

/// `max_staleness` from the query of `/v1/auth`, ignoring every other
/// parameter (the original request's, behind Envoy's prefix).
fn requested_bound(query: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(query) = query else {
        return Ok(None);
    };
    let mut max = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == "max_staleness" {
            stale::set_max_staleness(&mut max, &value).map_err(|e| e.message)?;
        }
    }
    Ok(max)
}

/// `ANY /v1/auth` and `ANY /v1/auth/{*rest}`.
pub(crate) async fn auth(State(state): State<AppState>, req: Request) -> Response {
    state
        .gateway
        .decide_http(req.headers(), req.uri().query())
        .into_response()
}
