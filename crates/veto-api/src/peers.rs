//! Membership: `GET /v1/peers` (open), `POST /v1/peers` and
//! `DELETE /v1/peers/{name-or-addr}` (admin).
//!
//! A peer is shown as `{"name": "eu-west" | null, "addr": "10.0.0.2:7401",
//! "state": "connected" | "connecting" | "down", "lag": 0, "rtt_ms": 12.5 | null,
//! "last_contact": 1700000000 | null}`; the list is `{"peers": [...]}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use veto_core::record::MAX_KEY_BYTES;

use crate::auth::Admin;
use crate::backend::PeerView;
use crate::error::ApiError;
use crate::limits::{parse_json, Body};
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PeerList<'a> {
    peers: &'a [PeerView],
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddPeer {
    addr: String,
    #[serde(default)]
    name: Option<String>,
}

fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(format!(
            "field `{field}` must not be empty"
        )));
    }
    if value.len() > MAX_KEY_BYTES {
        return Err(ApiError::invalid(format!(
            "field `{field}` is {} bytes; the limit is {MAX_KEY_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

/// `GET /v1/peers` (admin: the list names addresses to dial, which
/// `/v1/status` keeps to names the certificates proved).
pub(crate) async fn list(_: Admin, State(state): State<AppState>) -> Response {
    let peers = state.backend.peers();
    Json(PeerList { peers: &peers }).into_response()
}

/// `POST /v1/peers`: 201 with the new peer.
pub(crate) async fn add(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let req: AddPeer = parse_json(&body)?;
    check_text("addr", &req.addr)?;
    if let Some(name) = &req.name {
        check_text("name", name)?;
    }
    let peer = state.backend.add_peer(req.addr, req.name).await?;
    Ok((StatusCode::CREATED, Json(&peer)).into_response())
}

/// `DELETE /v1/peers/{name-or-addr}`: 204, or 404 when no peer has that name or
/// address.
pub(crate) async fn remove(
    _: Admin,
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(name_or_addr) = path?;
    state.backend.remove_peer(&name_or_addr).await?;
    Ok(StatusCode::NO_CONTENT)
}
