//! veto-api: the HTTP API of a veto node, on axum.
//!
//! It serves lookups (`/v1/check`), gateway authorisation (`/v1/auth`),
//! revocation (`/v1/revocations`, `/oauth2/revoke`), the audit trail, membership,
//! status, metrics and health, as specified in the project's DESIGN.md. Every
//! error is `{"error": "<code>", "message": "<what was wrong>"}`.
//!
//! Lookups can be held to a staleness bound: past it, `/v1/auth` refuses (or,
//! under the `open` policy, says so in `Veto-Stale`) and `/v1/check` names
//! the stale origins (see [`stale`]).
//!
//! It also receives Security Event Tokens from Shared Signals transmitters
//! (`POST /v1/events`, see [`events`]), and describes itself in an OpenAPI
//! document (`GET /openapi.json`, see [`openapi`]).
//!
//! `GET /ui` serves the operator dashboard (cluster map, propagation latency,
//! audit trail, revoke form, receipts): static files compiled into the
//! binary, open to all since they hold no data, under a strict
//! Content-Security-Policy; the page reads the API with the admin token the
//! operator types in.
//!
//! # Answers where DESIGN.md leaves a choice
//!
//! - A record (201 from `POST /v1/revocations`, items of the batch and audit
//!   lists): `{"id": "<origin>-<seq>", "scope", <its keys>, "before"?,
//!   "expires_at", "reason", "actor", "origin": "<16 hex>", "seq", "hlc",
//!   "revoked_at"}`. Only the scope's keys appear; no `iss` means any issuer; an
//!   opaque token appears as `token_sha256` (hex) only. `hlc` is the 64-bit
//!   stamp as a decimal string, since JSON numbers lose precision above 2^53.
//! - `POST /v1/revocations/batch` answers 201 `{"records": [...]}` in request
//!   order and `GET /v1/revocations` answers `{"records": [...]}`, newest first.
//! - `actor` is the name of the API token that wrote the record (`"admin"`,
//!   [`DEFAULT_ACTOR`], for the admin token); the request's own `actor` is
//!   kept as `on_behalf_of`, and `/oauth2/revoke` keeps the client id there
//!   (or [`OAUTH_ACTOR`]). `reason` defaults to `""`.
//! - Roles: see [`tokens`]. No token or an unknown one is 401 `unauthorized`,
//!   a token without the endpoint's role 403 `forbidden`.
//! - A batch over [`MAX_BATCH_ITEMS`] is 413 `too_many_items`; a body over
//!   [`MAX_BODY_BYTES`] is 413 `payload_too_large`.
//! - `GET /v1/peers` answers `{"peers": [...]}`; a peer is `{"name", "addr",
//!   "state", "lag", "rtt_ms", "last_contact"}` with `null` for what is unknown.
//! - `/healthz` answers `{"status": "ok"}`, `/readyz` `{"status": "ready"}` or
//!   503 `unavailable`.
//!
//! It must never depend on veto-store or veto-gossip: the node behind the API is
//! reached through the [`Backend`] trait, which the binary implements.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo(backend: Arc<dyn veto_api::Backend>, handle: metrics_exporter_prometheus::PrometheusHandle) {
//! let config = veto_api::ApiConfig::new("admin-token").with_prometheus(handle);
//! let app: axum::Router = veto_api::router(backend, config);
//! # }
//! ```

pub mod backend;
pub mod config;
pub mod error;
pub mod events;

mod audit;
mod auth;
mod check;
mod feed;
mod filter;
mod gateway;
mod hot;
mod limits;
mod oauth;
pub mod openapi;
mod peers;
mod receipt;
mod revoke;
mod snapshot;
pub mod stale;
mod state;
mod status;
pub mod tokens;
mod ui;
mod view;
pub mod watch;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, post};
use axum::Router;
use tower_http::classify::SharedClassifier;
use tower_http::trace::TraceLayer;

pub use backend::{
    Backend, BackendError, ClockView, NodeInfo, PeerView, RecordChunks, Revoked, StatusView,
    StorageView,
};
pub use config::DEFAULT_SET_REPLAY_WINDOW;
pub use config::{system_clock, ApiConfig, Clock, MetricsRenderer, DEFAULT_MAX_TOKEN_LIFETIME};

pub use error::ApiError;
pub use events::{Transmitter, TransmitterError, TransmitterSet};
pub use feed::{Cursor, Feed, FeedConfig};
pub use gateway::{AuthDecision, GatewayAuth, NOT_READY_MESSAGE};
pub use hot::HotRoutes;
pub use limits::{MAX_BATCH_ITEMS, MAX_BODY_BYTES};
pub use oauth::OAUTH_ACTOR;
pub use stale::{Stale, StaleBound, StaleOrigin, StalePolicy, STALE_HEADER};
pub use tokens::{Principal, Role, Roles, TokenEntry, TokenSet, TokenTable, TokensError};
pub use veto_core::request::{DEFAULT_ACTOR, MAX_EXPIRY_HORIZON};

/// Builds the HTTP API over `backend`.
///
/// The lookup metrics are registered with the global `metrics` recorder here,
/// so install the recorder before calling this.
pub fn router(backend: Arc<dyn Backend>, config: ApiConfig) -> Router {
    router_and_hot_routes(backend, config).0
}

/// Builds the HTTP API over `backend` as [`router`] does, with its
/// [`HotRoutes`]: a server that asks them first answers a gateway's
/// lookups without going through the router.
pub fn router_and_hot_routes(backend: Arc<dyn Backend>, config: ApiConfig) -> (Router, HotRoutes) {
    let events = events::routes(Arc::clone(&backend), &config);
    let state = state::AppState::new(backend, config);
    let hot = HotRoutes::new(state.clone());
    let router = Router::new()
        .route("/v1/revocations", post(revoke::revoke_one).get(audit::list))
        .route("/v1/revocations/batch", post(revoke::revoke_batch))
        .route("/v1/revocations/{id}/receipt", get(receipt::receipt))
        .route("/v1/check", get(check::check_get).post(check::check_batch))
        .route("/v1/auth", any(gateway::auth))
        .route("/v1/auth/", any(gateway::auth))
        .route("/v1/auth/{*rest}", any(gateway::auth))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/v1/peers", get(peers::list).post(peers::add))
        .route("/v1/peers/{name_or_addr}", delete(peers::remove))
        .route("/v1/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/healthz", get(status::healthz))
        .route("/readyz", get(status::readyz))
        .route("/v1/watch", get(watch::watch))
        .route("/v1/snapshot", get(snapshot::snapshot))
        .route("/v1/filter", get(filter::filter).layer(filter::cache()))
        .merge(events)
        .route(openapi::OPENAPI_PATH, get(openapi::serve))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/{asset}", get(ui::asset))
        .fallback(error::unknown_path)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new(SharedClassifier::new(
            stale::TraceClassifier,
        )))
        .with_state(state);
    (router, hot)
}
