//! The one error shape every endpoint answers with:
//! `{"error": "<code>", "message": "<what was wrong>"}`.
//!
//! Every failure path, including axum's own extractor rejections, the 404 and 405
//! fallbacks and the body-size limit, goes through [`ApiError`], so a client can
//! always parse a failure the same way.

use axum::extract::rejection::{
    BytesRejection, FormRejection, JsonRejection, PathRejection, QueryRejection,
};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::backend::BackendError;

/// A failed request: the HTTP status, a stable machine-readable code and a message
/// for the human reading it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable error code, such as `invalid_request`.
    pub code: &'static str,
    /// What was wrong, in words.
    pub message: String,
}

/// The error codes the API uses, so that clients and tests share one spelling.
pub mod code {
    /// The body is not syntactically valid JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// The request is well-formed but its content is not acceptable.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// A token given to a lookup cannot be decoded.
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// The body is larger than the limit.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// A batch holds more items than the limit.
    pub const TOO_MANY_ITEMS: &str = "too_many_items";
    /// No API token, or one this node does not accept (401).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// A known token without the endpoint's role (403).
    pub const FORBIDDEN: &str = "forbidden";
    /// No such path, or no such thing.
    pub const NOT_FOUND: &str = "not_found";
    /// The path exists but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// The thing already exists.
    pub const CONFLICT: &str = "conflict";
    /// Storage failed; nothing was stored.
    pub const STORAGE_FAILED: &str = "storage_failed";
    /// The node cannot serve this now.
    pub const UNAVAILABLE: &str = "unavailable";
    /// Writes are halted after a storage failure (503).
    pub const WRITES_HALTED: &str = "writes_halted";
    /// The node's clock disagrees with its peers' (503).
    pub const CLOCK_SKEW: &str = "clock_skew";
    /// An origin is staler than the staleness bound, under the `closed`
    /// policy (503 from `/v1/auth`).
    pub const STALE: &str = "stale";
    /// RFC 7009: the `token_type_hint` is not one this server knows.
    pub const UNSUPPORTED_TOKEN_TYPE: &str = "unsupported_token_type";
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, message)
    }

    /// 400 `invalid_json`.
    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_JSON, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }

    /// Maps an axum rejection (status and text) onto the error shape. axum answers
    /// 422 for JSON that is well-formed but of the wrong shape; veto answers 400
    /// for every malformed request, so 422 becomes 400.
    fn from_rejection(status: StatusCode, text: String) -> ApiError {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => too_large(),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => ApiError::invalid(text),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::new(status, "unsupported_media_type", text)
            }
            s if s.is_client_error() => ApiError::new(s, code::INVALID_REQUEST, text),
            s => ApiError::new(s, code::UNAVAILABLE, text),
        }
    }
}

/// 413 for a body over [`crate::MAX_BODY_BYTES`].
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        code::PAYLOAD_TOO_LARGE,
        format!(
            "the request body exceeds the limit of {} bytes",
            crate::MAX_BODY_BYTES
        ),
    )
}

/// Counts an error response by status. Called on error paths only, so the
/// allocation for the label does not touch the lookup hot path.
pub(crate) fn count_error(status: StatusCode) {
    metrics::counter!("veto_http_errors_total", "status" => status.as_u16().to_string())
        .increment(1);
}

/// Builds the JSON error response with `extra` headers.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Response {
    count_error(status);
    let body = serde_json::to_vec(&ErrorBody {
        error: code,
        message,
    })
    .unwrap_or_else(|_| br#"{"error":"internal","message":"unprintable error"}"#.to_vec());
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let extra: &[(header::HeaderName, HeaderValue)] = if self.status == StatusCode::UNAUTHORIZED
        {
            &[(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"veto\""),
            )]
        } else {
            &[]
        };
        error_response(self.status, self.code, &self.message, extra)
    }
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> ApiError {
        match err {
            BackendError::Invalid(m) => ApiError::invalid(m),
            BackendError::NotFound(m) => ApiError::not_found(m),
            BackendError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, code::CONFLICT, m),
            BackendError::Storage(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::STORAGE_FAILED,
                format!("storage failed, nothing was stored: {m}"),
            ),
            BackendError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, m)
            }
            BackendError::WritesHalted(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::WRITES_HALTED,
                format!("writes are halted, nothing was stored: {m}"),
            ),
            BackendError::ClockSkew(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::CLOCK_SKEW,
                format!("nothing was stored: {m}"),
            ),
        }
    }
}

macro_rules! from_rejection {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(r: $t) -> ApiError {
                ApiError::from_rejection(r.status(), r.body_text())
            }
        }
    )*};
}

from_rejection!(
    BytesRejection,
    FormRejection,
    JsonRejection,
    PathRejection,
    QueryRejection
);

/// The 404 for paths no route knows.
pub(crate) async fn unknown_path(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

/// The 405 for a known path with the wrong method.
pub(crate) async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
}
