//! Proof of enforcement, checked against the oracle whenever a node sends
//! reports (with every frontier, and promptly after records land):
//!
//! - **receipt-not-durable**: what a node's table says some node holds (the
//!   facts receipts are made of), that node's store covers durably, for every
//!   node still in the life the report came from;
//! - **watermark-overclaims**: where a node's watermark says it holds
//!   everything an origin acknowledged up to a time (production's
//!   `Holdings::watermarks`), its store covers every such record;
//! - **receipt-incomplete** (at the end of a run, see `actions.rs`): once the
//!   cluster has converged, every node's receipt of each origin's latest
//!   record names every running node as enforcing it.
//!
//! Ids an injected disk fault destroyed are exempt: that loss is not veto's.

use std::collections::BTreeMap;
use std::time::Duration;

use veto_core::{NodeId, RecordId};
use veto_node::Holdings;

use crate::sched::{Time, MS};
use crate::world::World;

/// Slack for the nanosecond bumps that keep a node's report times
/// increasing when its clock reads the same twice.
const SAME_INSTANT: Duration = Duration::from_millis(1);

/// How often one node's watermarks are checked, at most (simulated time).
const WATERMARK_CHECK_EVERY: Time = 200 * MS;

/// What one node's reports were last checked at.
#[derive(Default)]
pub(crate) struct Checked {
    /// The node's life the versions belong to.
    incarnation: u64,
    /// Per reported node, the body version checked: a claim checked once
    /// stays true (a store only loses data to a disk fault, which exempts
    /// it).
    versions: BTreeMap<NodeId, u64>,
    /// When its watermarks were last checked.
    marks_at: Option<Time>,
}

impl World {
    /// The running nodes by their current writer id.
    fn writers(&self) -> BTreeMap<NodeId, usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(k, n)| n.live.as_ref().map(|l| (l.writer.id(), k)))
            .collect()
    }

    /// What node `i` knows of who holds what, as production reads it.
    pub(crate) fn holdings(&self, i: usize) -> Option<Holdings> {
        let live = self.nodes[i].live.as_ref()?;
        let mut holdings = Holdings::new(live.writer.id());
        holdings.reports = live.engine.reports().snapshot();
        Some(holdings)
    }

    /// Node `i` is sending reports: every claim in its table holds.
    pub(crate) fn check_reports(&mut self, i: usize) {
        let Some(live) = self.nodes[i].live.as_ref() else {
            return;
        };
        let mut writers: Option<BTreeMap<NodeId, usize>> = None;
        let mut found = Vec::new();
        let incarnation = self.nodes[i].incarnation;
        if self.checked.len() <= i {
            self.checked.resize_with(i + 1, Checked::default);
        }
        let mut checked = std::mem::take(&mut self.checked[i]);
        if checked.incarnation != incarnation {
            checked = Checked {
                incarnation,
                ..Checked::default()
            };
        }
        for report in live.engine.reports().nodes() {
            if checked.versions.insert(report.node, report.state_version())
                == Some(report.state_version())
            {
                continue;
            }
            let writers = writers.get_or_insert_with(|| self.writers());
            let Some(&k) = writers.get(&report.node) else {
                continue;
            };
            let covered = self.nodes[k].store.covered();
            for (origin, coverage) in &report.coverage {
                let held = covered.origin(*origin).map_or(0, |s| s.contiguous());
                let id = RecordId {
                    origin: *origin,
                    seq: held + 1,
                };
                if held < coverage.through() && !self.oracle.damaged.contains(id) {
                    let detail = format!(
                        "{}'s table says {} holds seqs 1..={} of {origin}, but its store covers 1..={held}",
                        self.nodes[i].name,
                        self.nodes[k].name,
                        coverage.through()
                    );
                    found.push(("receipt-not-durable", k, id, detail));
                }
            }
        }
        let due = checked
            .marks_at
            .is_none_or(|at| self.now >= at + WATERMARK_CHECK_EVERY);
        if due {
            checked.marks_at = Some(self.now);
        }
        self.checked[i] = checked;
        let now = self.nodes[i].local(self.now);
        let mine = self.nodes[i].store.covered();
        let marks = match self.holdings(i) {
            Some(holdings) if due => holdings.watermarks(now, |_| true),
            _ => Vec::new(),
        };
        for mark in marks {
            let (Ok(origin), Some(through)) =
                (mark.origin.parse::<NodeId>(), mark.complete_through)
            else {
                continue;
            };
            if Some(&origin) == self.nodes[i].live.as_ref().map(|l| l.writer.id()).as_ref() {
                continue;
            }
            let through = Duration::from_secs_f64(through);
            // The origin's last record acknowledged before that time.
            let ids = RecordId { origin, seq: 1 }..=RecordId {
                origin,
                seq: u64::MAX,
            };
            let last = self
                .oracle
                .records
                .range(ids)
                .rev()
                .find(|(_, k)| k.acked_local.is_some_and(|at| at + SAME_INSTANT < through));
            let Some((last, _)) = last else {
                continue;
            };
            let held = mine.origin(origin).map_or(0, |s| s.contiguous());
            let id = RecordId {
                origin,
                seq: held + 1,
            };
            if held < last.seq && !self.oracle.damaged.contains(id) {
                let acks: Vec<String> = (1..=last.seq.min(6))
                    .map(|q| {
                        let k = self.oracle.records.get(&RecordId { origin, seq: q });
                        format!(
                            "{q}@{:?}",
                            k.and_then(|k| k.acked_local).map(|d| d.as_secs_f64())
                        )
                    })
                    .collect();
                let marks = self.holdings(i).and_then(|h| {
                    h.reports
                        .get(&origin)
                        .map(|r| format!("{:?}", r.coverage.get(&origin)))
                });
                let detail = format!(
                    "its watermark says it holds everything {} acknowledged through {:.3} s, but it lacks {id} of seqs up to {} [acks {acks:?}; report {marks:?}]",
                    mark.name,
                    through.as_secs_f64(),
                    last.seq
                );
                found.push(("watermark-overclaims", i, id, detail));
            }
        }
        for (invariant, node, id, detail) in found {
            self.oracle
                .violate(self.now, invariant, Some(node), Some(id), detail);
        }
    }

    /// The first receipt, at any running node, of any origin's latest
    /// record held everywhere, that does not name every running node as
    /// enforcing it.
    pub(crate) fn incomplete_receipt(&self) -> Option<(usize, RecordId, String)> {
        let running: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.live.is_some())
            .map(|n| n.name.as_str())
            .collect();
        let first = self.nodes.iter().find(|n| n.live.is_some())?;
        for (origin, seqs) in first.store.covered().origins() {
            let seq = seqs.contiguous();
            if seq == 0 {
                continue;
            }
            let id = RecordId { origin, seq };
            for i in 0..self.nodes.len() {
                let Some(holdings) = self.holdings(i) else {
                    continue;
                };
                let receipt = holdings.receipt(&[id], &[], |_| true);
                let pending: Vec<&str> = running
                    .iter()
                    .copied()
                    .filter(|name| {
                        !receipt
                            .nodes
                            .iter()
                            .any(|n| n.name == *name && n.enforced())
                    })
                    .collect();
                if !pending.is_empty() {
                    let detail = format!(
                        "after convergence, its receipt of {id} still has {} pending",
                        pending.join(", ")
                    );
                    return Some((i, id, detail));
                }
            }
        }
        None
    }
}
