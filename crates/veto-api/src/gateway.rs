//! `/v1/auth`: the gateway subrequest endpoint for nginx `auth_request`, Envoy
//! `ext_authz` (HTTP service) and Traefik ForwardAuth.
//!
//! It reads `Authorization: Bearer <token>` and answers 200 with an empty body
//! when the token is not revoked, or 401 with
//! `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`
//! when it is revoked, missing or malformed, or when the request carries more
//! than one `Authorization` header (fail closed: the upstream might act on
//! another one than the one checked). Any method is accepted and any path
//! under `/v1/auth/` routes here, because Envoy forwards the original method and
//! path behind a configured prefix. The body is never read.
//!
//! Revoked answers are counted in `veto_lookups_total{result="revoked"}`, not in
//! `veto_http_errors_total`: they are the endpoint doing its job.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::auth::bearer;
use crate::check::check_token;
use crate::error::{code, error_response};
use crate::state::{AppState, Outcome};

const REVOKED_CHALLENGE: &str =
    "Bearer error=\"invalid_token\", error_description=\"the token has been revoked\"";
const REVOKED_BODY: &[u8] = br#"{"error":"invalid_token","message":"the token has been revoked"}"#;

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

fn deny(message: &str) -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        code::INVALID_TOKEN,
        message,
        &[(header::WWW_AUTHENTICATE, challenge(message))],
    )
}

fn revoked() -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, Bytes::from_static(REVOKED_BODY)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(REVOKED_CHALLENGE),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `ANY /v1/auth` and `ANY /v1/auth/{*rest}`.
pub(crate) async fn auth(State(state): State<AppState>, req: Request) -> Response {
    let start = Instant::now();
    let m = &state.auth_metrics;
    let token = match bearer(req.headers()) {
        Ok(t) => t,
        Err(e) => {
            m.record(Outcome::Error, start);
            return deny(e.message());
        }
    };
    match check_token(state.backend.as_ref(), token) {
        Ok(None) => {
            m.record(Outcome::Clean, start);
            StatusCode::OK.into_response()
        }
        Ok(Some(_)) => {
            m.record(Outcome::Revoked, start);
            revoked()
        }
        Err(e) => {
            m.record(Outcome::Error, start);
            deny(&format!("malformed JWT: {e}"))
        }
    }
}
