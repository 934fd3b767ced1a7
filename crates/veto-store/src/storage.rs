//! The store as the node's [`Storage`] and as the replication engine's
//! [`RecordSource`] for repairs and backlogs.

use std::ops::RangeInclusive;

use veto_core::{Frontier, NodeId, Record, RecordId};
use veto_gossip::engine::{HeldRanges, RecordSource, SourceUnavailable};
use veto_gossip::proto::Holding;
use veto_node::Storage;

use crate::{Store, StoreError};

impl Storage for Store {
    type Error = StoreError;

    fn append(&mut self, records: &[Record]) -> Result<Vec<Record>, StoreError> {
        Store::append(self, records)
    }

    fn append_local(&mut self, records: &[Record]) -> Result<Vec<Record>, StoreError> {
        Store::append_local(self, records)
    }

    fn cover(&mut self, frontier: &Frontier) -> Result<(), StoreError> {
        self.cover_frontier(frontier)
    }

    fn restore(&mut self, records: &[Record]) -> Result<Vec<Record>, StoreError> {
        Store::restore(self, records)
    }

    fn expired(
        &self,
        now_secs: u64,
        grace_secs: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        Store::expired(self, now_secs, grace_secs, limit)
    }

    fn prune(&mut self, ids: &[RecordId]) -> Result<usize, StoreError> {
        Store::prune(self, ids)
    }
}

fn unavailable(what: &str, e: StoreError) -> SourceUnavailable {
    tracing::error!(error = %e, "cannot read {what} for a peer");
    SourceUnavailable
}

/// Reads repair batches straight from sled. The reads are bounded by the
/// engine's batch size and served from sled's cache, so they are brief
/// enough to run on the replication task.
impl RecordSource for Store {
    fn read_range(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max: usize,
    ) -> Result<Vec<Record>, SourceUnavailable> {
        Store::read_range(self, origin, seqs, max).map_err(|e| unavailable("records", e))
    }

    fn get(&self, id: RecordId) -> Result<Option<Record>, SourceUnavailable> {
        Store::get(self, id).map_err(|e| unavailable("a record", e))
    }

    fn holdings(&self) -> Vec<(NodeId, Holding)> {
        match self.origin_digests() {
            Ok(digests) => digests
                .iter()
                .map(|(origin, d)| (*origin, Holding::of(d)))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the per-origin digests");
                Vec::new()
            }
        }
    }

    fn held(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max_ranges: usize,
    ) -> Result<(Vec<RangeInclusive<u64>>, u64), SourceUnavailable> {
        let mut answer = HeldRanges::new(seqs.clone(), max_ranges);
        self.held_seqs(origin, seqs, |seq| answer.push(seq))
            .map_err(|e| unavailable("held seqs", e))?;
        Ok(answer.finish())
    }
}
