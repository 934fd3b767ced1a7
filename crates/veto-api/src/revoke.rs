//! `POST /v1/revocations` and `POST /v1/revocations/batch`: turning each
//! request into a revocation by the rules of [`veto_core::request`], and
//! storing it; with `?wait=`, answering once the receipt meets the wait
//! (see [`crate::receipt`]). `actor` defaults to `"admin"`: there is one admin token, so the
//! node cannot tell admins apart; callers that can should say who they are in
//! `actor`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use veto_core::request::RevokeRequest;
use veto_core::{Record, Revocation};

use crate::auth::Admin;
use crate::error::{code, ApiError};
use crate::limits::{parse_array, parse_json, Body, MAX_BATCH_ITEMS};
use crate::receipt::parse_wait;
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

/// `POST /v1/revocations`: 201 with the stored record; with `?wait=`, the
/// record and its `receipt`, 201 once the wait is met or 202 at the timeout.
pub(crate) async fn revoke_one(
    _: Admin,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let wait = parse_wait(query.as_deref())?;
    let req: RevokeRequest = parse_json(&body)?;
    let rev = req
        .into_revocation(&state.cutoffs())
        .map_err(|e| ApiError::invalid(e.0))?;
    if let Some(w) = &wait {
        w.check_regions(&state)?;
    }
    let records = store(&state, vec![rev]).await?;
    let view = records.first().map(RecordView::from);
    let Some(w) = wait else {
        return Ok((StatusCode::CREATED, Json(view)).into_response());
    };
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    let (status, receipt) = w.run(&state, &ids, StatusCode::CREATED).await;
    let mut body = serde_json::to_value(view).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "receipt".into(),
            serde_json::to_value(receipt).unwrap_or_default(),
        );
    }
    Ok((status, Json(body)).into_response())
}

/// `POST /v1/revocations/batch`: 201 with `{"records": [...]}` in request order.
/// Any invalid item rejects the whole batch, naming its index; nothing is stored.
/// With `?wait=`, one `receipt` for the whole batch, as for one record.
pub(crate) async fn revoke_batch(
    _: Admin,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let wait = parse_wait(query.as_deref())?;
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
    if let Some(w) = &wait {
        w.check_regions(&state)?;
    }
    let records = if batch.is_empty() {
        Vec::new()
    } else {
        store(&state, batch).await?
    };
    let list = RecordList::new(&records);
    let Some(w) = wait.filter(|_| !records.is_empty()) else {
        return Ok((StatusCode::CREATED, Json(list)).into_response());
    };
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    let (status, receipt) = w.run(&state, &ids, StatusCode::CREATED).await;
    let mut body = serde_json::to_value(list).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "receipt".into(),
            serde_json::to_value(receipt).unwrap_or_default(),
        );
    }
    Ok((status, Json(body)).into_response())
}
