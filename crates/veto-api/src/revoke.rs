//! `POST /v1/revocations` and `POST /v1/revocations/batch`: turning each
//! request into a revocation by the rules of [`veto_core::request`], and
//! storing it; with `?wait=`, answering once the receipt meets the wait
//! (see [`crate::receipt`]). They need the `revoke` role. A record's `actor`
//! is the name of the token that wrote it; the request's own `actor` text is
//! kept beside it as `on_behalf_of` (see [`veto_core::actor`]).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use veto_core::request::RevokeRequest;
use veto_core::{Record, Revocation, ScopeKind};

use crate::auth::Caller;
use crate::error::{code, ApiError};
use crate::limits::{parse_array, parse_json, Body, MAX_BATCH_ITEMS};
use crate::receipt::parse_wait;
use crate::state::AppState;
use crate::tokens::Role;
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

/// A request turned into a revocation written by `caller`: its `actor` is
/// the caller's name, with the request's own text as `on_behalf_of`. `what`
/// names the item in an error (`""` for a single revocation).
///
/// A `peer` record evicts a node from the cluster, so it takes the `admin`
/// role, not only `revoke`.
fn revocation(
    caller: &Caller,
    req: RevokeRequest,
    cutoffs: &veto_core::request::Cutoffs,
    what: &str,
) -> Result<Revocation, ApiError> {
    let on_behalf_of = req.actor.clone();
    let mut rev = req
        .into_revocation(cutoffs)
        .map_err(|e| ApiError::invalid(format!("{what}{}", e.0)))?;
    if rev.target.kind() == ScopeKind::Peer {
        caller.clone().require(Role::Admin)?;
    }
    rev.actor = veto_core::actor::compose(caller.name(), on_behalf_of.as_deref());
    Ok(rev)
}

/// `POST /v1/revocations`: 201 with the stored record; with `?wait=`, the
/// record and its `receipt`, 201 once the wait is met or 202 at the timeout.
pub(crate) async fn revoke_one(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let caller = caller.require(Role::Revoke)?;
    let wait = parse_wait(query.as_deref())?;
    let req: RevokeRequest = parse_json(&body)?;
    let rev = revocation(&caller, req, &state.cutoffs(), "")?;
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
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let caller = caller.require(Role::Revoke)?;
    let wait = parse_wait(query.as_deref())?;
    let reqs: Vec<RevokeRequest> = parse_array(&body, MAX_BATCH_ITEMS)?;
    let cutoffs = state.cutoffs();
    let batch = reqs
        .into_iter()
        .enumerate()
        .map(|(i, r)| revocation(&caller, r, &cutoffs, &format!("item {i}: ")))
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
