//! The engine's one read path into the node's records.

use std::ops::RangeInclusive;

use veto_core::{NodeId, Record, RecordId};

use crate::proto::Holding;

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

    /// The stored record with this id, if the node holds it.
    fn get(&self, id: RecordId) -> Result<Option<Record>, SourceUnavailable> {
        let got = self.read_range(id.origin, id.seq..=id.seq, 1)?;
        Ok(got.into_iter().find(|r| r.id == id))
    }

    /// Per origin, the [`Holding`] of the live records the node holds of it,
    /// in origin order. Called for every anti-entropy round, so it must be
    /// cheap (kept up to date as records are stored and pruned).
    fn holdings(&self) -> Vec<(NodeId, Holding)>;

    /// The seqs of `origin` within `seqs` that the node holds with data, as
    /// ascending ranges, at most `max_ranges` of them; with the last seq the
    /// answer describes (the end of `seqs` unless the range budget ran out,
    /// then the end of the last range listed).
    fn held(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max_ranges: usize,
    ) -> Result<(Vec<RangeInclusive<u64>>, u64), SourceUnavailable>;
}

/// The record source could not be read just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("records could not be read")]
pub struct SourceUnavailable;

/// Builds the answer of [`RecordSource::held`] from the held seqs of one
/// origin, fed in ascending order: the seqs as ranges, at most `max_ranges`
/// of them, and the last seq the answer describes.
#[derive(Clone, Debug)]
pub struct HeldRanges {
    seqs: RangeInclusive<u64>,
    max_ranges: usize,
    out: Vec<RangeInclusive<u64>>,
    upto: Option<u64>,
}

impl HeldRanges {
    /// An empty answer for `seqs`.
    pub fn new(seqs: RangeInclusive<u64>, max_ranges: usize) -> HeldRanges {
        HeldRanges {
            seqs,
            max_ranges,
            out: Vec::new(),
            upto: None,
        }
    }

    /// Adds the next held seq. Returns false once the range budget is spent:
    /// later seqs are not wanted.
    pub fn push(&mut self, seq: u64) -> bool {
        if self.upto.is_some() {
            return false;
        }
        if !self.seqs.contains(&seq) {
            return true;
        }
        let adjacent = self
            .out
            .last()
            .is_some_and(|last| last.end().checked_add(1) == Some(seq));
        if adjacent {
            if let Some(last) = self.out.last_mut() {
                *last = *last.start()..=seq;
            }
        } else if self.out.len() >= self.max_ranges {
            // The budget is spent: describe only up to just before this seq,
            // which the ranges so far do exactly.
            self.upto = Some(seq - 1);
            return false;
        } else {
            self.out.push(seq..=seq);
        }
        true
    }

    /// The ranges and the last seq they describe.
    pub fn finish(self) -> (Vec<RangeInclusive<u64>>, u64) {
        let upto = self.upto.unwrap_or(*self.seqs.end());
        (self.out, upto)
    }
}

/// [`HeldRanges`] over an iterator of ascending held seqs.
pub fn held_ranges(
    held: impl IntoIterator<Item = u64>,
    seqs: RangeInclusive<u64>,
    max_ranges: usize,
) -> (Vec<RangeInclusive<u64>>, u64) {
    let mut answer = HeldRanges::new(seqs, max_ranges);
    for seq in held {
        if !answer.push(seq) {
            break;
        }
    }
    answer.finish()
}

#[cfg(test)]
mod tests {
    use super::held_ranges;

    #[test]
    fn held_ranges_merge_and_stop_at_the_budget() {
        let seqs = [1, 2, 3, 7, 8, 10, 20];
        assert_eq!(
            held_ranges(seqs, 1..=30, 10),
            (vec![1..=3, 7..=8, 10..=10, 20..=20], 30)
        );
        assert_eq!(held_ranges(seqs, 2..=9, 10), (vec![2..=3, 7..=8], 9));
        assert_eq!(held_ranges(seqs, 1..=30, 2), (vec![1..=3, 7..=8], 9));
        assert_eq!(held_ranges([], 5..=9, 2), (vec![], 9));
    }
}
