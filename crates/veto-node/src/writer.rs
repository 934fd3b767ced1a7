//! Local revocations: the writer identity of a process lifetime, and the
//! numbering and stamping of what it writes.
//!
//! Every start takes a fresh writer id, never one the store (or, in the
//! simulator, any node) already covers, and numbers from 1 under it: a data
//! directory restored from a backup or cloned can never issue an id twice
//! (docs/durability.md). Stamps come from the node's hybrid clock, which the
//! caller raises at start above the last stamp its store kept.

use std::ops::RangeInclusive;
use std::time::Duration;

use std::sync::Arc;

use rand::RngCore;
use veto_core::{Frontier, Hlc, HybridClock, NodeId, Record, RecordId, Revocation};

/// A writer id drawn from `rng` that `taken` does not refuse.
pub fn fresh_writer(rng: &mut (impl RngCore + ?Sized), taken: impl Fn(NodeId) -> bool) -> NodeId {
    loop {
        let id = NodeId::new(rng.next_u64());
        if !taken(id) {
            return id;
        }
    }
}

/// What a process lifetime writes with: its hybrid clock and its writer.
pub struct Life {
    /// The clock that stamps this life's records (and takes in peers').
    pub clock: Arc<HybridClock>,
    /// The numbering of this life's records.
    pub writer: Writer,
}

/// Begins a process lifetime under writer id `id` over a store that covers
/// `covered` and kept `last_local_stamp`: the clock starts above that stamp,
/// so no stamp of this life goes below one of an earlier life even if the
/// wall clock stepped back in between; seqs start after the highest the
/// store covers under `id` (1 under a fresh id, which nothing covers).
pub fn begin_life(
    id: NodeId,
    covered: &Frontier,
    last_local_stamp: Option<Hlc>,
    max_clock_offset: Duration,
) -> Life {
    let clock = Arc::new(HybridClock::new(id, max_clock_offset));
    if let Some(floor) = last_local_stamp {
        clock.raise_to(floor);
    }
    Life {
        clock,
        writer: Writer::resume(id, covered.max_seq(id).saturating_add(1)),
    }
}

/// The numbering of one writer id's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writer {
    id: NodeId,
    next_seq: u64,
}

impl Writer {
    /// A writer under a fresh `id`: its first record is seq 1.
    pub fn new(id: NodeId) -> Writer {
        Writer::resume(id, 1)
    }

    /// A writer under `id` whose next record is `next_seq` (an id reused
    /// from the store numbers on after its highest seq).
    pub fn resume(id: NodeId, next_seq: u64) -> Writer {
        Writer {
            id,
            next_seq: next_seq.max(1),
        }
    }

    /// The writer id: the origin of the records it makes.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Numbers `batch` from the next seq and stamps each record with `clock`
    /// at wall time `now`. The seqs are taken only by [`Writer::commit`],
    /// once the records are durable: a batch that fails to be stored leaves
    /// them free.
    pub fn prepare(
        &self,
        batch: Vec<Revocation>,
        clock: &HybridClock,
        now: Duration,
    ) -> Vec<Record> {
        batch
            .into_iter()
            .zip(self.next_seq..)
            .map(|(revocation, seq)| {
                let id = RecordId {
                    origin: self.id,
                    seq,
                };
                revocation.into_record(id, clock.stamp(now))
            })
            .collect()
    }

    /// The `n` records prepared last are durable: their seqs are taken.
    pub fn commit(&mut self, n: usize) {
        self.next_seq = self.next_seq.saturating_add(n as u64);
    }

    /// Records up to `seq` are on disk (part of a failed write that landed):
    /// numbering goes on after them.
    pub fn skip_past(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
    }

    /// After a failed write, once the store works again: `on_disk` is the
    /// highest seq of this writer the store holds. Records of the failed
    /// write that reached the disk keep their seqs and numbering goes on
    /// after them; returns those seqs, whose records are to be enforced and
    /// replicated like any other (their client was answered 503, and a retry
    /// makes a second record, which is harmless).
    pub fn recover(&mut self, on_disk: u64) -> Option<RangeInclusive<u64>> {
        let landed = (on_disk >= self.next_seq).then_some(self.next_seq..=on_disk);
        self.skip_past(on_disk);
        landed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use veto_core::Target;

    fn revocation(jti: &str) -> Revocation {
        Revocation {
            target: Target::Token {
                iss: None,
                jti: jti.into(),
            },
            expires_at: 1_700_003_600,
            reason: String::new(),
            actor: "admin".into(),
        }
    }

    #[test]
    fn seqs_are_taken_only_once_durable_and_stamps_rise() {
        let id = NodeId::new(7);
        let clock = HybridClock::new(id, Duration::from_millis(500));
        let now = Duration::from_secs(1_700_000_000);
        let mut w = Writer::new(id);
        let first = w.prepare(vec![revocation("a"), revocation("b")], &clock, now);
        assert_eq!(first.iter().map(|r| r.id.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(first[0].hlc < first[1].hlc);
        // Not committed (the write failed): the same seqs again.
        let again = w.prepare(vec![revocation("c")], &clock, now);
        assert_eq!(again[0].id.seq, 1);
        w.commit(1);
        assert_eq!(w.next_seq(), 2);
        w.skip_past(9);
        assert_eq!(w.next_seq(), 10);
        w.skip_past(3);
        assert_eq!(w.next_seq(), 10);
        // Nothing of the failed write landed; then seqs 10 and 11 did.
        assert_eq!(w.recover(9), None);
        assert_eq!(w.recover(11), Some(10..=11));
        assert_eq!(w.next_seq(), 12);
    }

    #[test]
    fn a_fresh_writer_is_never_a_taken_id() {
        let mut rng = StdRng::seed_from_u64(1);
        let first = fresh_writer(&mut rng, |_| false);
        let mut rng = StdRng::seed_from_u64(1);
        let second = fresh_writer(&mut rng, |id| id == first);
        assert_ne!(first, second);
    }
}
