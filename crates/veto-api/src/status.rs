//! `GET /v1/status`, `GET /metrics`, `GET /healthz` and `GET /readyz`.
//!
//! Status is `{"node": {"id": "<16 hex>", "name", "region"}, "revocations": N,
//! "digest": "<hex>", "peers": [<peer>...]}` with peers as in [`crate::peers`].

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::error::{code, ApiError};
use crate::peers::PeerJson;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Node)]
pub(crate) struct NodeJson<'a> {
    id: String,
    name: &'a str,
    region: &'a str,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Status)]
pub(crate) struct StatusJson<'a> {
    node: NodeJson<'a>,
    revocations: u64,
    digest: &'a str,
    peers: Vec<PeerJson<'a>>,
}

/// `GET /v1/status`.
pub(crate) async fn status(State(state): State<AppState>) -> Response {
    let s = state.backend.status();
    Json(StatusJson {
        node: NodeJson {
            id: s.node.id.to_string(),
            name: &s.node.name,
            region: &s.node.region,
        },
        revocations: s.revocations,
        digest: &s.digest,
        peers: s.peers.iter().map(PeerJson::new).collect(),
    })
    .into_response()
}

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 once the node has loaded its state, else 503.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.backend.ready() {
        Ok(Json(serde_json::json!({"status": "ready"})).into_response())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "the node is still loading its state",
        ))
    }
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
