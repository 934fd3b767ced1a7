//! Receipts: `GET /v1/revocations/{id}/receipt`, and the `?wait=` and
//! `?timeout=` of the revoke endpoints, which answer once the wait is met
//! (or 202 at the timeout, the revocation stored either way).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use veto_core::receipt::{parse_timeout, ReceiptView, Wait};
use veto_core::RecordId;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::Role;

/// How long a revoke waits when `wait` is given without `timeout`.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A revoke's `?wait=…&timeout=…`.
pub(crate) struct WaitFor {
    pub(crate) wait: Wait,
    pub(crate) timeout: Duration,
}

/// Reads `wait` and `timeout` from a query string; `None` when there is no
/// `wait`. Other parameters are left to the caller.
pub(crate) fn parse_wait(query: Option<&str>) -> Result<Option<WaitFor>, ApiError> {
    let mut wait = None;
    let mut timeout = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "wait" if wait.is_some() => return Err(ApiError::invalid("`wait` is given twice")),
            "timeout" if timeout.is_some() => {
                return Err(ApiError::invalid("`timeout` is given twice"))
            }
            "wait" => wait = Some(Wait::parse(&value).map_err(|e| ApiError::invalid(e.0))?),
            "timeout" => {
                let secs = parse_timeout(&value).map_err(|e| ApiError::invalid(e.0))?;
                timeout = Some(Duration::from_secs_f64(secs));
            }
            _ => {}
        }
    }
    match (wait, timeout) {
        (Some(wait), timeout) => Ok(Some(WaitFor {
            wait,
            timeout: timeout.unwrap_or(DEFAULT_WAIT),
        })),
        (None, Some(_)) => Err(ApiError::invalid("`timeout` needs a `wait`")),
        (None, None) => Ok(None),
    }
}

impl WaitFor {
    /// Refuses regions no node of the cluster serves, before anything is
    /// stored.
    pub(crate) fn check_regions(&self, state: &AppState) -> Result<(), ApiError> {
        let Wait::Regions(regions) = &self.wait else {
            return Ok(());
        };
        let known: Vec<String> = state
            .backend
            .origins()
            .into_iter()
            .map(|o| o.region)
            .collect();
        let unknown: Vec<&str> = regions
            .iter()
            .filter(|r| !known.contains(r))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut known = known;
        known.sort();
        known.dedup();
        Err(ApiError::invalid(format!(
            "`wait` names unknown region(s) {}; the cluster's regions are {}",
            unknown.join(", "),
            known.join(", ")
        )))
    }

    /// Waits for the receipt of `ids`: the status to answer with (`met` when
    /// the wait was met, else 202) and the receipt.
    pub(crate) async fn run(
        &self,
        state: &AppState,
        ids: &[RecordId],
        met: StatusCode,
    ) -> (StatusCode, Option<ReceiptView>) {
        let receipt = state
            .backend
            .wait_receipt(ids, &self.wait, self.timeout)
            .await;
        let done = receipt.as_ref().is_some_and(|r| self.wait.met_by(r));
        let status = if done { met } else { StatusCode::ACCEPTED };
        let outcome = if done { "met" } else { "timeout" };
        metrics::counter!("veto_revoke_waits_total", "outcome" => outcome).increment(1);
        (status, receipt)
    }
}

/// `GET /v1/revocations/{id}/receipt`.
pub(crate) async fn receipt(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_any(&[Role::Revoke, Role::Audit])?;
    let id: RecordId = id.parse().map_err(|_| {
        ApiError::invalid(format!(
            "{id:?} is not a record id (`<16 hex digits>-<seq>`)"
        ))
    })?;
    match state.backend.receipt(&[id]) {
        Some(receipt) => Ok((StatusCode::OK, Json(receipt)).into_response()),
        None => Err(ApiError::not_found(format!(
            "no node is known to hold record {id}"
        ))),
    }
}
