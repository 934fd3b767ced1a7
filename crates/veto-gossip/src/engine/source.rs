//! The engine's one read path into the node's records.

use std::ops::RangeInclusive;

use veto_core::{NodeId, Record};

/// The records the node holds, read by the engine to answer a peer's frontier.
///
/// The engine only asks for seqs its durable frontier covers, so each asked seq
/// is either stored or was pruned after expiry. It relies on this contract:
///
/// - answer the stored records of `origin` with a seq in `seqs`, in ascending
///   seq order, at most `max` of them;
/// - when fewer than `max` come back, every other seq of `seqs` has been pruned;
///   when exactly `max` come back, every seq between them that is missing has
///   been pruned. The engine tells the peer those seqs are *cleared*, and the
///   peer covers them for good, so an implementation must not leave records
///   out for any other reason;
/// - if the records cannot be read (an I/O error), answer
///   [`SourceUnavailable`]: the engine tries again after
///   [`super::Config::retry_delay`] and clears nothing.
pub trait RecordSource {
    /// Stored records of `origin` with seqs in `seqs`, ascending, at most `max`.
    fn read_range(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max: usize,
    ) -> Result<Vec<Record>, SourceUnavailable>;
}

/// The record source could not be read just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("records could not be read")]
pub struct SourceUnavailable;
