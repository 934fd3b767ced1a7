//! The oracle's side of disk faults, and the audit at the end of a run.
//!
//! A disk fault (a restored backup, a cut log, lost data) destroys records at
//! one node: that is not veto's doing, so those records are exempt from
//! `durable-record-lost` there. But veto must make up for it:
//!
//! - every acknowledged record that some node still holds must end up at
//!   every node again (`acked-record-missing`, and convergence);
//! - a node whose log was cut must report the ids it lost when it starts
//!   (`silent-loss`): its durability marker says how many ids it covered;
//! - a record whose every copy was destroyed is beyond repair, and exempt
//!   from delivery. Records that never left a node before its backup was
//!   restored are such records, as docs/durability.md says.

use veto_core::{Frontier, RecordId};

use crate::invariants::Oracle;
use crate::sched::Time;
use crate::store::Store;

/// Every id of `f`, in order.
fn ids(f: &Frontier) -> impl Iterator<Item = RecordId> + '_ {
    f.origins().flat_map(|(origin, seqs)| {
        seqs.ranges()
            .flat_map(move |r| r.map(move |seq| RecordId { origin, seq }))
    })
}

impl Oracle {
    /// A disk fault replaced or damaged node `node`'s store: what it held and
    /// no longer holds was destroyed by the fault. From now on the node is
    /// held to what its store holds.
    pub(crate) fn replaced(&mut self, node: usize, store: &Store) {
        let lost: Vec<RecordId> = ids(&self.held[node])
            .filter(|id| !self.pruned[node].contains(*id) && !store.has(*id))
            .collect();
        for id in lost {
            self.damaged.insert(id);
        }
        let mut held = Frontier::new();
        for r in store.records() {
            held.insert(r.id);
        }
        let pruned: Vec<RecordId> = ids(&self.pruned[node])
            .filter(|id| store.covers(*id) && !store.has(*id))
            .collect();
        let mut still = Frontier::new();
        for id in pruned {
            still.insert(id);
        }
        self.held[node] = held;
        self.pruned[node] = still;
    }

    /// How many ids a disk fault destroyed somewhere.
    pub(crate) fn damaged_count(&self) -> u64 {
        self.damaged.count()
    }

    /// Node `node`'s log was cut and lost `uncovered` covered ids (`example`
    /// among them): it must report at least that many missing at its next
    /// start.
    pub(crate) fn expect_report(&mut self, node: usize, uncovered: u64, example: Option<RecordId>) {
        if uncovered == 0 {
            return;
        }
        let slot = &mut self.expect_report[node];
        *slot = match slot.take() {
            Some((before, first)) => Some((before + uncovered, first.or(example))),
            None => Some((uncovered, example)),
        };
    }

    /// Node `node`'s store was replaced whole (a restored backup): an earlier
    /// cut no longer matters.
    pub(crate) fn expect_no_report(&mut self, node: usize) {
        self.expect_report[node] = None;
    }

    /// Node `node` started and reported `reported` ids missing from its store.
    pub(crate) fn started(&mut self, now: Time, node: usize, reported: u64) {
        let Some((lost, example)) = self.expect_report[node].take() else {
            return;
        };
        if reported < lost {
            let detail = format!(
                "the node's log was cut and its store lost {lost} covered ids, acknowledged records \
                 among them, but it started reporting {reported} missing: the loss goes unnoticed"
            );
            self.violate(now, "silent-loss", Some(node), example, detail);
        }
    }

    /// The end of a run, over every node's store: every record a node stored
    /// is still there or was collected (or destroyed by a disk fault there);
    /// every acknowledged record is everywhere, unless legitimately
    /// forgotten, or damaged by a disk fault and either held nowhere any more
    /// or expiring before `cut` (so possibly collected somewhere, and not
    /// restored by a node whose clock says it expired).
    pub(crate) fn audit(&mut self, now: Time, stores: &[&Store], cut: u64) {
        let mut anywhere = Frontier::new();
        let mut covered = Frontier::new();
        for store in stores {
            for r in store.records() {
                anywhere.insert(r.id);
            }
            covered.union_with(store.covered());
        }
        for (node, store) in stores.iter().enumerate() {
            let lost: Vec<RecordId> = ids(&self.held[node])
                .filter(|id| !store.has(*id) && !self.pruned[node].contains(*id))
                .collect();
            for id in lost {
                self.violate(
                    now,
                    "durable-record-lost",
                    Some(node),
                    Some(id),
                    "stored here once, never collected, and gone".into(),
                );
            }
            let missing: Vec<(RecordId, &'static str)> = self
                .records
                .iter()
                .filter(|(_, k)| k.acked_at.is_some())
                .filter(|(id, k)| {
                    let beyond_repair = self.damaged.contains(**id)
                        && (!anywhere.contains(**id) || k.record.expires_at < cut);
                    !beyond_repair
                })
                .filter_map(|(id, _)| {
                    let forgotten = self.forgotten.contains(*id);
                    // A record collected, whose every id a disk fault then
                    // took, is rightly known nowhere.
                    let gone_for_good = forgotten && !covered.contains(*id);
                    if !store.covers(*id) && !gone_for_good {
                        Some((*id, "never arrived"))
                    } else if store.covers(*id) && !store.has(*id) && !forgotten {
                        Some((*id, "covered without data though nobody collected it"))
                    } else {
                        None
                    }
                })
                .collect();
            for (id, why) in missing {
                self.violate(
                    now,
                    "acked-record-missing",
                    Some(node),
                    Some(id),
                    format!("an acknowledged record is missing after convergence: {why}"),
                );
            }
        }
    }
}
