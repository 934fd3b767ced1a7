//! veto-client: a Rust client for veto nodes, for gateways and tools.
//!
//! - [`Client`] calls every endpoint of a node's HTTP API (revoke, batch,
//!   revokes that wait for their receipt, receipts, audit, lookups, gateway
//!   auth, RFC 7009 revocation, membership, status, snapshot, watch, health
//!   and metrics), async on reqwest. Every failure is a [`ClientError`]; an
//!   error answer carries the API's `code` and `message`. An `https://` node
//!   is reached over rustls, trusting the system's roots, and a private CA
//!   with [`Client::with_ca_pem`].
//! - [`LocalCache`] holds a node's revocations in this process, kept current
//!   by the node's watch stream, and answers lookups in well under a
//!   microsecond with veto-core's [`veto_core::LookupIndex`]. It reports its
//!   staleness (and, with a `max_staleness`, each origin's, from the node's
//!   heartbeats) and, past a bound, fails closed (or open, if so
//!   configured).
//!
//! ```no_run
//! # async fn demo() -> Result<(), veto_client::ClientError> {
//! use veto_client::{CacheConfig, Check, Client, LocalCache};
//! let node = Client::new("http://127.0.0.1:7400")?;
//! let cache = LocalCache::start(node, CacheConfig::default()).await?;
//! let check = Check { iss: Some("https://idp"), jti: Some("t-1"), ..Check::default() };
//! if !cache.check(&check).is_allowed() {
//!     // refuse the request
//! }
//! # Ok(()) }
//! ```
//!
//! It speaks to a node only over HTTP: it must never depend on veto-api,
//! veto-store or veto-gossip, only on veto-core's data model.

mod cache;
mod client;
mod error;
mod gateway;
mod record;
mod stream;
mod types;

pub use cache::{
    CacheConfig, CacheMode, CacheStatus, Decision, LocalCache, StaleOrigin, StalePolicy,
};
pub use client::{Client, Waited};
pub use error::ClientError;
pub use gateway::Gateway;
pub use record::RecordView;
pub use stream::{SnapshotStream, WatchEvent, WatchStream};
pub use types::{CheckAnswer, CheckItem, Claims, Revoked};
/// One origin's freshness watermark, as `/v1/status` and the watch
/// heartbeats carry it.
pub use veto_core::receipt::OriginView as Origin;
/// One node's part of a [`ReceiptView`].
pub use veto_core::receipt::ReceiptNode;
/// Which nodes enforce a revocation (`GET /v1/revocations/{id}/receipt`,
/// and the `receipt` of a revoke with `wait`).
pub use veto_core::receipt::ReceiptView;
/// One revocation to ask for (`POST /v1/revocations`), the type the node
/// itself decodes.
pub use veto_core::request::RevokeRequest;
/// Who a node is.
pub use veto_core::status::NodeInfo as NodeStatus;
/// A peer as the node reports it.
pub use veto_core::status::PeerView as Peer;
/// `GET /v1/status`.
pub use veto_core::status::StatusView as Status;
pub use veto_core::AuditQuery;
pub use veto_core::{Check, Record, RecordId, ScopeKind, Target};
