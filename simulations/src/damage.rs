//! Damage to a durable store, as disks and operators inflict it: a log cut
//! short at its first bad entry, records whose data is gone under ids still
//! covered. The durability marker survives both (it is a file of its own).

use rand::Rng;
use veto_core::{Frontier, RecordId};

use crate::rng::SimRng;
use crate::store::Store;

/// What a cut log took with it.
#[derive(Debug, Default)]
pub(crate) struct Cut {
    /// Covered ids the store no longer covers.
    pub(crate) uncovered: u64,
    /// How many writes were lost.
    pub(crate) writes: usize,
}

/// `a` without the ids of `b`.
fn subtract(a: &Frontier, b: &Frontier) -> Frontier {
    let mut out = Frontier::new();
    for (origin, seqs) in a.origins() {
        match b.origin(origin) {
            Some(gone) => {
                for r in seqs.difference(gone) {
                    out.insert_range(origin, r);
                }
            }
            None => {
                for r in seqs.ranges() {
                    out.insert_range(origin, r);
                }
            }
        }
    }
    out
}

impl Store {
    /// The log loses its last `writes` durable writes, data and coverage
    /// alike, as if cut at a damaged entry; the marker keeps its value.
    /// Records pruned since a lost write had stored them lose their coverage
    /// too; records a lost write restored lose their data again; the last
    /// local stamp goes back to what it was before the lost writes.
    pub(crate) fn truncate(&mut self, writes: usize) -> Cut {
        self.commit();
        let before = self.d.covered_count;
        let mut uncover = Frontier::new();
        let mut cut = Cut::default();
        for _ in 0..writes {
            let Some(w) = self.d.log.pop_back() else {
                break;
            };
            cut.writes += 1;
            if let Some(before) = w.stamp_before {
                self.d.last_stamp = before;
            }
            for id in &w.restored {
                self.drop_data(*id);
            }
            for (origin, range) in &w.covered {
                let span = RecordId::span(*origin, range);
                let held: Vec<RecordId> = self.d.records.range(span).map(|(id, _)| *id).collect();
                for id in held {
                    self.drop_data(id);
                }
                uncover.insert_range(*origin, range.clone());
            }
            for id in &w.stored {
                self.drop_data(*id);
                uncover.insert(*id);
            }
        }
        self.d.dataless = subtract(&self.d.dataless, &uncover);
        self.rebuild_covered();
        cut.uncovered = before.saturating_sub(self.d.covered_count);
        cut
    }

    /// `count` held records, drawn with `rng`, lose their data; their ids
    /// stay covered. Returns them.
    pub(crate) fn lose_data(&mut self, count: usize, rng: &mut SimRng) -> Vec<RecordId> {
        self.commit();
        let mut lost = Vec::new();
        for _ in 0..count {
            let held = self.held_count();
            if held == 0 {
                break;
            }
            let k = rng.gen_range(0..held);
            let Some(id) = self.d.records.keys().nth(k).copied() else {
                break;
            };
            self.drop_data(id);
            self.d.dataless.insert(id);
            lost.push(id);
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use veto_core::{Hlc, NodeId, Record, RecordId, Revocation, Target};

    use super::*;
    use crate::rng::{stream, Stream};

    fn record(origin: u64, seq: u64) -> Record {
        let id = RecordId {
            origin: NodeId::new(origin),
            seq,
        };
        let revocation = Revocation {
            target: Target::Token {
                iss: None,
                jti: format!("t{seq}"),
            },
            expires_at: 2_000_000_000,
            reason: String::new(),
            actor: String::new(),
        };
        revocation.into_record(
            id,
            Hlc::from_unix(std::time::Duration::from_secs(1_700_000_000)),
        )
    }

    #[test]
    fn a_cut_log_loses_data_and_coverage_but_not_the_marker() {
        let mut s = Store::new(1);
        for seq in 1..=5 {
            let r = record(7, seq);
            s.note_local_stamp(Hlc(seq));
            s.insert(0, r);
            s.commit();
        }
        let mut cleared = Frontier::new();
        cleared.insert_range(NodeId::new(9), 1..=3);
        s.cover(&cleared);
        s.commit();
        assert_eq!((s.covered_count(), s.marker()), (8, 8));
        let cut = s.truncate(3);
        assert_eq!(cut.writes, 3);
        // The cover (3 ids) and seqs 4 and 5 are gone.
        assert_eq!(cut.uncovered, 5);
        assert_eq!((s.covered_count(), s.marker()), (3, 8));
        assert!(s.has(record(7, 3).id) && !s.covers(record(7, 4).id));
        // The last local stamp goes back with the writes that raised it.
        assert_eq!(s.last_stamp(), Some(Hlc(3)));
        // Covering again raises nothing until the marker is passed.
        s.insert(0, record(7, 4));
        s.commit();
        assert_eq!(s.marker(), 8);
    }

    #[test]
    fn lost_data_keeps_the_ids_covered() {
        let mut s = Store::new(1);
        for seq in 1..=10 {
            s.insert(0, record(7, seq));
        }
        s.commit();
        let lost = s.lose_data(4, &mut stream(1, Stream::Disk));
        assert_eq!(lost.len(), 4);
        assert_eq!((s.covered_count(), s.held_count()), (10, 6));
        assert!(lost.iter().all(|id| s.covers(*id) && !s.has(*id)));
        // A restore takes one back.
        assert!(s.restore(0, record(7, lost[0].seq)));
    }
}
