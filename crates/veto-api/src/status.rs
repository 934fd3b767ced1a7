//! `GET /v1/status`, `GET /metrics`, `GET /healthz` and `GET /readyz`.
//!
//! Status is `{"node": {"id": "<16 hex>", "name", "region"}, "revocations": N,
//! "digest": "<hex>", "peers": [<peer>...], "clock": {...}, "storage": {...}}`
//! with peers as in [`crate::peers`]. `clock` is `{"state":
//! "ok"|"skewed"|"unconfirmed", "offset_ms"?, "peers_measured", "peers_off"}`:
//! while `skewed`, garbage collection and bulk revocations stop. `storage` is
//! `{"writes": "ok"|"halted", "halted_because"?, "missing_records"?}`.

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
    clock: ClockJson<'a>,
    storage: StorageJson<'a>,
}

/// This node's clock against its peers'.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ClockStatus)]
pub(crate) struct ClockJson<'a> {
    /// `ok`, `skewed` or `unconfirmed`.
    state: &'a str,
    /// This node's clock minus the median peer's, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset_ms: Option<i64>,
    peers_measured: usize,
    peers_off: usize,
}

/// Whether the store takes writes, and what it lost before this start.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = StorageStatus)]
pub(crate) struct StorageJson<'a> {
    /// `ok` or `halted`.
    writes: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    halted_because: Option<&'a str>,
    /// Acknowledged records lost from the database before this start that
    /// peers have not sent back yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    missing_records: Option<u64>,
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
        clock: ClockJson {
            state: &s.clock.state,
            offset_ms: s.clock.offset_ms,
            peers_measured: s.clock.peers_measured,
            peers_off: s.clock.peers_off,
        },
        storage: StorageJson {
            writes: if s.storage.halted.is_some() {
                "halted"
            } else {
                "ok"
            },
            halted_because: s.storage.halted.as_deref(),
            missing_records: s.storage.missing_records,
        },
    })
    .into_response()
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
