//! Shared Signals: `POST /v1/events` receives Security Event Tokens (RFC 8417)
//! pushed by configured transmitters (RFC 8935) and turns the revocation events
//! among them (CAEP, OAuth event types) into records.
//!
//! - The body is one SET, a compact JWS, sent as `application/secevent+jwt` (a
//!   request without a `Content-Type` is read the same way), at most
//!   [`MAX_SET_BYTES`].
//! - The SET must have `typ` `secevent+jwt`, an `iss` that is a configured
//!   [`Transmitter`], a signature by one of that transmitter's keys, an `aud`
//!   naming the transmitter's configured audience, an `iat`, a `jti` and an
//!   `events` object. `exp` is not enforced: a late SET still reports a real
//!   event, and revoking late beats not revoking.
//! - Success is 202 with an empty body. Every failure is RFC 8935's
//!   `{"err": "<code>", "description": "..."}`: 400 `invalid_request` (not a
//!   SET, or an event veto acts on that it cannot map), `invalid_key` (no key of
//!   the transmitter fits the `kid` and `alg`, or `alg` is not an accepted
//!   asymmetric algorithm), `invalid_issuer` (not a configured transmitter),
//!   `invalid_audience`, and `authentication_failed` (the signature does not
//!   verify with any fitting key). A body over the limit is 413
//!   `invalid_request`, and a storage failure is 503 with the API's code.
//!   SETs are authenticated by their signature alone; `access_denied` is not
//!   used.
//! - Events map to records as described in [`mapping`]; each record's `actor`
//!   is the transmitter's issuer and its `reason` the event type URI, followed
//!   by `reason_admin` when the event has one. Event types veto does not act
//!   on are accepted and ignored.
//! - A SET whose `jti` was already applied for the same issuer answers 202 and
//!   stores nothing. The replay cache remembers a `jti` for
//!   [`ApiConfig::set_replay_window`](crate::ApiConfig::set_replay_window)
//!   (24 hours by default) and holds at most [`SET_REPLAY_CAPACITY`] of them,
//!   in memory: after a restart, or beyond those bounds, a replayed SET is
//!   applied again. Revoking is idempotent, so that revokes nothing new and
//!   only adds a duplicate record to the audit trail. Two deliveries of one SET
//!   that race each other may both be applied, with the same harmless effect.
//!
//! Metrics: `veto_set_received_total{result}` counts SETs by outcome
//! (`applied`, `ignored`, `replayed`, or the error code).

pub mod mapping;
mod replay;
mod subject;
pub(crate) mod transmitter;
mod verify;

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde::Serialize;
use veto_core::Revocation;

pub use transmitter::{Transmitter, TransmitterError};

use crate::backend::Backend;
use crate::config::{ApiConfig, Clock};
use crate::error::{code, count_error, ApiError};
use replay::ReplayCache;

/// The path SETs are pushed to.
pub const EVENTS_PATH: &str = "/v1/events";
/// The largest SET accepted, in bytes (64 KiB).
pub const MAX_SET_BYTES: usize = 64 * 1024;
/// The most SET `jti`s the replay cache remembers at once.
pub const SET_REPLAY_CAPACITY: usize = 100_000;
/// The media type of a SET (RFC 8417 §2.3).
pub const SET_MEDIA_TYPE: &str = "application/secevent+jwt";

/// RFC 8935 §2.4 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetErrorCode {
    InvalidRequest,
    InvalidKey,
    InvalidIssuer,
    InvalidAudience,
    AuthenticationFailed,
}

impl SetErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            SetErrorCode::InvalidRequest => "invalid_request",
            SetErrorCode::InvalidKey => "invalid_key",
            SetErrorCode::InvalidIssuer => "invalid_issuer",
            SetErrorCode::InvalidAudience => "invalid_audience",
            SetErrorCode::AuthenticationFailed => "authentication_failed",
        }
    }
}

/// A refused SET: the answer's status, `err` code and `description`.
#[derive(Debug)]
pub(crate) struct SetError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl SetError {
    pub(crate) fn new(code: SetErrorCode, description: impl Into<String>) -> SetError {
        SetError {
            status: StatusCode::BAD_REQUEST,
            code: code.as_str(),
            description: description.into(),
        }
    }
}

/// RFC 8935's error body.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SetErrorBody<'a> {
    /// `invalid_request`, `invalid_key`, `invalid_issuer`, `invalid_audience`
    /// or `authentication_failed` (with 400); `invalid_request` with 413; the
    /// API's `storage_failed` or `unavailable` with 503.
    err: &'a str,
    /// What was wrong, for a human.
    description: &'a str,
}

impl IntoResponse for SetError {
    fn into_response(self) -> Response {
        count_error(self.status);
        metrics::counter!("veto_set_received_total", "result" => self.code).increment(1);
        let body = serde_json::to_vec(&SetErrorBody {
            err: self.code,
            description: &self.description,
        })
        .unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// The transmitters `POST /v1/events` accepts SETs from, replaceable while
/// the node serves (a configuration reload): clones share one set, and each
/// SET is verified against the set as it was when it arrived.
#[derive(Clone, Default)]
pub struct TransmitterSet(Arc<RwLock<Arc<[Transmitter]>>>);

impl TransmitterSet {
    /// A set of these transmitters.
    pub fn new(transmitters: Vec<Transmitter>) -> TransmitterSet {
        TransmitterSet(Arc::new(RwLock::new(transmitters.into())))
    }

    /// The transmitters now accepted.
    pub fn current(&self) -> Arc<[Transmitter]> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Accepts SETs from these transmitters from now on, instead.
    pub fn replace(&self, transmitters: Vec<Transmitter>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = transmitters.into();
    }
}

impl std::fmt::Debug for TransmitterSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.current().iter()).finish()
    }
}

struct Receiver {
    backend: Arc<dyn Backend>,
    transmitters: TransmitterSet,
    replay: ReplayCache,
    clock: Clock,
    max_lifetime: u64,
}

#[derive(Clone)]
pub(crate) struct EventsState(Arc<Receiver>);

/// The `/v1/events` route with its own state, to merge into the API router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(
    backend: Arc<dyn Backend>,
    config: &ApiConfig,
) -> Router<S> {
    let receiver = Receiver {
        backend,
        transmitters: config
            .transmitter_set
            .clone()
            .unwrap_or_else(|| TransmitterSet::new(config.transmitters.clone())),
        replay: ReplayCache::new(config.set_replay_window.as_secs(), SET_REPLAY_CAPACITY),
        clock: Arc::clone(&config.clock),
        max_lifetime: config.max_token_lifetime.as_secs(),
    };
    Router::new()
        .route(
            EVENTS_PATH,
            post(receive).layer(DefaultBodyLimit::max(MAX_SET_BYTES)),
        )
        .with_state(EventsState(Arc::new(receiver)))
}

/// Whether the request's `Content-Type` is a SET's (or absent).
fn is_set_body(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(SET_MEDIA_TYPE)
}

fn accepted(result: &'static str) -> Response {
    metrics::counter!("veto_set_received_total", "result" => result).increment(1);
    StatusCode::ACCEPTED.into_response()
}

/// `POST /v1/events`.
pub(crate) async fn receive(
    State(EventsState(rx)): State<EventsState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match apply(&rx, &headers, body).await {
        Ok(result) => accepted(result),
        Err(e) => {
            tracing::info!(err = e.code, description = %e.description, "SET refused");
            e.into_response()
        }
    }
}

async fn apply(
    rx: &Receiver,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<&'static str, SetError> {
    let body = body.map_err(|r| {
        let mut e = SetError::new(SetErrorCode::InvalidRequest, r.body_text());
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            e.status = StatusCode::PAYLOAD_TOO_LARGE;
            e.description = format!("a SET is at most {MAX_SET_BYTES} bytes");
        }
        e
    })?;
    if !is_set_body(headers) {
        return Err(SetError::new(
            SetErrorCode::InvalidRequest,
            format!("the Content-Type must be {SET_MEDIA_TYPE}"),
        ));
    }
    let token = std::str::from_utf8(&body)
        .map_err(|_| SetError::new(SetErrorCode::InvalidRequest, "the body is not UTF-8 text"))?;
    let transmitters = rx.transmitters.current();
    let set = verify::verify(token, &transmitters)?;
    let transmitter = &transmitters[set.transmitter];
    let now = (rx.clock)();
    if rx
        .replay
        .contains(transmitter.issuer(), &set.claims.jti, now)
    {
        tracing::info!(iss = transmitter.issuer(), jti = %set.claims.jti, "SET already applied; ignoring the replay");
        return Ok("replayed");
    }
    let plan = mapping::plan(&set.claims, transmitter.issuer(), now, rx.max_lifetime)?;
    let result = if plan.revocations.is_empty() {
        tracing::info!(iss = transmitter.issuer(), jti = %set.claims.jti, events = ?plan.ignored, "SET accepted; no event revokes anything");
        "ignored"
    } else {
        let n = plan.revocations.len();
        store(rx, plan.revocations).await?;
        tracing::info!(iss = transmitter.issuer(), jti = %set.claims.jti, records = n, "SET applied");
        "applied"
    };
    rx.replay.insert(transmitter.issuer(), &set.claims.jti, now);
    Ok(result)
}

/// Stores the revocations of one SET as one batch, as `POST /v1/revocations`
/// does, and counts them the same way.
async fn store(rx: &Receiver, batch: Vec<Revocation>) -> Result<(), SetError> {
    let n = batch.len();
    let as_set_error = |e: ApiError| SetError {
        status: e.status,
        code: e.code,
        description: e.message,
    };
    let records = rx
        .backend
        .revoke(batch)
        .await
        .map_err(|e| as_set_error(e.into()))?;
    if records.len() != n {
        return Err(as_set_error(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            format!("the node acknowledged {} of {n} revocations", records.len()),
        )));
    }
    for r in &records {
        metrics::counter!("veto_revocations_total", "scope" => r.target.kind().as_str())
            .increment(1);
    }
    Ok(())
}
