//! The storage a node writes through: the few operations the node's write
//! path needs, implemented by veto-store over sled and by the simulator in
//! memory with its crash model.
//!
//! Every method is durable when it returns `Ok`: the node acknowledges a
//! revocation, indexes a record and lets the engine advertise it only after
//! the call that stored it came back. Reads for the backlog and repairs go
//! through the engine's [`RecordSource`](veto_gossip::engine::RecordSource).

use veto_core::{Frontier, Record, RecordId};

/// A node's durable store of records.
pub trait Storage {
    /// Why a write or read failed. A failed write may have left part of
    /// itself on disk; the node finds out at its next recovery.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores records from peers, skipping ids already covered. Returns the
    /// records that were new.
    fn append(&mut self, records: &[Record]) -> Result<Vec<Record>, Self::Error>;

    /// Stores this node's own new records and keeps their highest stamp as
    /// the last local stamp, so that a restart never stamps below it. Returns
    /// the records stored (all of them, unless an id was already covered).
    fn append_local(&mut self, records: &[Record]) -> Result<Vec<Record>, Self::Error>;

    /// Covers ids without their data: records a peer collected, which must
    /// never be taken in again.
    fn cover(&mut self, frontier: &Frontier) -> Result<(), Self::Error>;

    /// Stores records again under ids covered without data (data a fault
    /// destroyed, sent back by a peer). Returns the records stored.
    fn restore(&mut self, records: &[Record]) -> Result<Vec<Record>, Self::Error>;

    /// Up to `limit` held records past `expires_at + grace_secs` at
    /// `now_secs`, the oldest first.
    fn expired(
        &self,
        now_secs: u64,
        grace_secs: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Self::Error>;

    /// Drops the data of `ids`, keeping them covered. Returns how many it
    /// dropped.
    fn prune(&mut self, ids: &[RecordId]) -> Result<usize, Self::Error>;
}
