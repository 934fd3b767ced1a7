//! `POST /v1/revocations` and `POST /v1/revocations/batch`: turning each
//! request into a revocation by the rules of [`veto_core::request`], and
//! storing it. `actor` defaults to `"admin"`: there is one admin token, so the
//! node cannot tell admins apart; callers that can should say who they are in
//! `actor`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use veto_core::request::RevokeRequest;
use veto_core::{Record, Revocation};

use crate::auth::Admin;
use crate::error::{code, ApiError};
use crate::limits::{parse_array, parse_json, Body, MAX_BATCH_ITEMS};
use crate::state::AppState;
use crate::view::{RecordList, RecordView};

/// Stores a batch and counts it; the records come back in request order.
pub(crate) async fn store(
    state: &AppState,
    batch: Vec<Revocation>,
) -> Result<Vec<Record>, ApiError> {
    let n = batch.len();
    let records = state.backend.revoke(batch).await?;
    if records.len() != n {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            format!("the node acknowledged {} of {n} revocations", records.len()),
        ));
    }
    for r in &records {
        metrics::counter!("veto_revocations_total", "scope" => r.target.kind().as_str())
            .increment(1);
    }
    Ok(records)
}

/// `POST /v1/revocations`: 201 with the stored record.
pub(crate) async fn revoke_one(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let req: RevokeRequest = parse_json(&body)?;
    let rev = req
        .into_revocation(&state.cutoffs())
        .map_err(|e| ApiError::invalid(e.0))?;
    let records = store(&state, vec![rev]).await?;
    let view = records.first().map(RecordView::from);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `POST /v1/revocations/batch`: 201 with `{"records": [...]}` in request order.
/// Any invalid item rejects the whole batch, naming its index; nothing is stored.
pub(crate) async fn revoke_batch(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let reqs: Vec<RevokeRequest> = parse_array(&body, MAX_BATCH_ITEMS)?;
    let cutoffs = state.cutoffs();
    let batch = reqs
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.into_revocation(&cutoffs)
                .map_err(|m| ApiError::invalid(format!("item {i}: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let records = if batch.is_empty() {
        Vec::new()
    } else {
        store(&state, batch).await?
    };
    Ok((StatusCode::CREATED, Json(RecordList::new(&records))).into_response())
}
