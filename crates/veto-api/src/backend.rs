//! The edge between the HTTP API and the node behind it.
//!
//! veto-api never touches storage or replication itself: the binary implements
//! [`Backend`] by wiring veto-store and veto-gossip together, and the API only
//! speaks HTTP. This keeps the dependency graph one-way (core <- api <- binary).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use veto_core::receipt::{OriginView, ReceiptView, Wait};
use veto_core::{AuditQuery, Check, Record, RecordId, Revocation, ScopeKind};

pub use veto_core::status::{ClockView, NodeInfo, PeerView, StatusView, StorageView};

use crate::feed::Feed;

/// Why a lookup came out revoked, with what the gateway may show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The scope of the matching record.
    pub scope: ScopeKind,
    /// The matching record's id, as `origin-seq`.
    pub id: String,
    /// The reason given when it was revoked.
    pub reason: String,
    /// Unix seconds at which it was revoked.
    pub revoked_at: u64,
}

/// The live records for `GET /v1/snapshot`, in chunks, as the node reads them.
///
/// A chunk is `Err` when reading failed part way; the stream then ends, and the
/// client is told the snapshot is incomplete. The reader stops or idles once
/// the receiver is dropped, so a client that goes away costs little.
pub type RecordChunks = mpsc::Receiver<Result<Vec<Record>, BackendError>>;

/// A failure of the node behind the API.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The request is invalid in a way only the node can tell.
    #[error("{0}")]
    Invalid(String),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing already exists.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed: nothing was acknowledged.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The node cannot take this now (starting or shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// Writes are halted after a storage failure; the node retries and resumes
    /// them once the disk works again. Nothing was stored.
    #[error("{0}")]
    WritesHalted(String),
    /// This node's clock disagrees with its peers', so it cannot take a
    /// revocation whose cutoff comes from the clock. Nothing was stored.
    #[error("{0}")]
    ClockSkew(String),
}

/// The node as the API sees it.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Who this node is.
    fn node(&self) -> NodeInfo;

    /// Stores revocations durably (flushed before this returns) as one batch and
    /// starts replicating them. Returns the records in request order.
    async fn revoke(&self, batch: Vec<Revocation>) -> Result<Vec<Record>, BackendError>;

    /// Answers a lookup from memory. Must be fast: this is the hot path.
    fn check(&self, check: &Check<'_>) -> Option<Revoked>;

    /// The audit trail, newest first.
    async fn audit(&self, query: AuditQuery) -> Result<Vec<Record>, BackendError>;

    /// The node's state for an operator.
    fn status(&self) -> StatusView;

    /// Whether the node has loaded its state and serves lookups.
    fn ready(&self) -> bool;

    /// Why writes are halted, if they are (lookups go on).
    fn writes_halted(&self) -> Option<String> {
        None
    }

    /// Every configured peer.
    fn peers(&self) -> Vec<PeerView>;

    /// Adds a peer at run time and persists it.
    async fn add_peer(&self, addr: String, name: Option<String>) -> Result<PeerView, BackendError>;

    /// Removes a peer by name or address, closes its connection, persists.
    async fn remove_peer(&self, name_or_addr: &str) -> Result<(), BackendError>;

    /// The feed of records that became durable here, for `GET /v1/watch` and
    /// the cursor of `GET /v1/snapshot`. A node without one answers both with
    /// 503 `unavailable`.
    fn feed(&self) -> Option<Arc<Feed>> {
        None
    }

    /// Which nodes hold `ids` durably (one record, or a batch held whole),
    /// or `None` if nothing is known of them here.
    fn receipt(&self, _ids: &[RecordId]) -> Option<ReceiptView> {
        None
    }

    /// Waits until the receipt of `ids` meets `wait` or `timeout` passes,
    /// and answers it as it then stands. The caller may drop the future at
    /// any time; that must cost nothing after.
    async fn wait_receipt(
        &self,
        ids: &[RecordId],
        _wait: &Wait,
        _timeout: Duration,
    ) -> Option<ReceiptView> {
        self.receipt(ids)
    }

    /// Per origin, up to when this node holds everything it made and how
    /// stale that is (this node's own origin included).
    fn origins(&self) -> Vec<OriginView> {
        Vec::new()
    }

    /// Starts reading every live record for `GET /v1/snapshot`.
    ///
    /// The API takes the feed's cursor before calling this, so every record the
    /// feed numbered up to that cursor must be in the answer: read from the
    /// state the feed's records are published after. Records that become
    /// durable while the read runs may or may not be in it; the watch stream
    /// delivers them after the cursor either way.
    fn snapshot_records(&self) -> Result<RecordChunks, BackendError> {
        Err(BackendError::Unavailable(
            "this node does not serve snapshots".into(),
        ))
    }
}
