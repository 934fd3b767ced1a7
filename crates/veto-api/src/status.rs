//! `GET /v1/status`, `GET /metrics`, `GET /healthz` and `GET /readyz`.
//!
//! Status is [`veto_core::status::StatusView`] as JSON (its module docs show
//! the shape).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{code, ApiError};
use crate::state::AppState;

/// `GET /v1/status`.
pub(crate) async fn status(State(state): State<AppState>) -> Response {
    Json(state.backend.status()).into_response()
}

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 once the node has loaded its state and takes writes,
/// else 503 saying which (while writes are halted, lookups still answer).
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if !state.backend.ready() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "the node is still loading its state",
        ));
    }
    if let Some(why) = state.backend.writes_halted() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::WRITES_HALTED,
            format!("lookups are served, but writes are halted: {why}"),
        ));
    }
    Ok(Json(serde_json::json!({"status": "ready"})).into_response())
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .as_ref()
        .map(|render| render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
