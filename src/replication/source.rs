//! The store as the engine's record source for repairs and backlogs.

use std::ops::RangeInclusive;

use veto_core::{NodeId, Record};
use veto_gossip::engine::{RecordSource, SourceUnavailable};
use veto_store::Store;

/// Reads repair batches straight from sled. The reads are bounded by the engine's
/// batch size and served from sled's cache, so they are brief enough to run on
/// the driver task.
pub(crate) struct StoreSource<'a>(pub(crate) &'a Store);

impl RecordSource for StoreSource<'_> {
    fn read_range(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max: usize,
    ) -> Result<Vec<Record>, SourceUnavailable> {
        self.0.read_range(origin, seqs, max).map_err(|e| {
            tracing::error!(error = %e, %origin, "cannot read records for a peer");
            SourceUnavailable
        })
    }
}
