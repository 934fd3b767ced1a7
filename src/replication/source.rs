//! The store as the engine's record source for repairs and backlogs.

use std::ops::RangeInclusive;

use veto_core::{NodeId, Record, RecordId};
use veto_gossip::engine::{HeldRanges, RecordSource, SourceUnavailable};
use veto_gossip::proto::Holding;
use veto_store::Store;

/// Reads repair batches straight from sled. The reads are bounded by the engine's
/// batch size and served from sled's cache, so they are brief enough to run on
/// the driver task.
pub(crate) struct StoreSource<'a>(pub(crate) &'a Store);

fn unavailable(what: &str, e: veto_store::StoreError) -> SourceUnavailable {
    tracing::error!(error = %e, "cannot read {what} for a peer");
    SourceUnavailable
}

impl RecordSource for StoreSource<'_> {
    fn read_range(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max: usize,
    ) -> Result<Vec<Record>, SourceUnavailable> {
        self.0
            .read_range(origin, seqs, max)
            .map_err(|e| unavailable("records", e))
    }

    fn get(&self, id: RecordId) -> Result<Option<Record>, SourceUnavailable> {
        self.0.get(id).map_err(|e| unavailable("a record", e))
    }

    fn holdings(&self) -> Vec<(NodeId, Holding)> {
        match self.0.origin_digests() {
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
        self.0
            .held_seqs(origin, seqs, |seq| answer.push(seq))
            .map_err(|e| unavailable("held seqs", e))?;
        Ok(answer.finish())
    }
}
