//! The end of a run: convergence after the heal, the deadline of the
//! convergence bound, and the audits of the last moment (delivery, index,
//! receipts).

use veto_core::{Frontier, RecordId};

use crate::sched::{Event, MS};
use crate::world::{Phase, World};

impl World {
    /// After the heal: whether every node now covers the same ids and holds
    /// the same records that no node may have collected yet.
    pub(crate) fn check_converged(&mut self) {
        if self.phase != Phase::Healed || self.converged_at.is_some() {
            return;
        }
        let Some(first) = self.nodes.first() else {
            return;
        };
        let count = first.store.covered_count();
        // Nothing may still be on its way to a disk: a local revocation not
        // yet acknowledged would make the cluster disagree a moment later.
        let busy = |n: &crate::node::SimNode| match &n.live {
            None => true,
            Some(live) => !live.pending.is_empty() || live.engine.stats().persisting > 0,
        };
        if self
            .nodes
            .iter()
            .any(|n| busy(n) || n.store.covered_count() != count)
        {
            return;
        }
        if self
            .nodes
            .iter()
            .any(|n| n.store.covered() != first.store.covered())
        {
            return;
        }
        let cut = self.collectable_before();
        let digest = first.store.digest_from(cut);
        if self
            .nodes
            .iter()
            .any(|n| n.store.digest_from(cut) != digest)
        {
            return;
        }
        self.converged_at = Some(self.now);
        self.q.push(self.now + self.p.settle_ms * MS, Event::End);
    }

    /// Records expiring before this (Unix seconds) may have been collected
    /// somewhere: the latest clock reading of any node, less the grace.
    fn collectable_before(&self) -> u64 {
        let now = self
            .nodes
            .iter()
            .map(|n| n.local_secs(self.now))
            .max()
            .unwrap_or(0);
        now.max(self.max_clock_secs)
            .saturating_sub(self.p.engine.gc_grace_s)
    }

    pub(crate) fn on_deadline(&mut self) {
        if self.converged_at.is_some() || self.ended {
            return;
        }
        let now = self.now;
        let mut union = Frontier::new();
        for n in &self.nodes {
            union.union_with(n.store.covered());
        }
        let bound = self.bound.as_ref().map_or(0.0, |b| b.total_ms);
        let mut named = false;
        for i in 0..self.nodes.len() {
            let missing = union.missing_in(self.nodes[i].store.covered());
            let lacking: u64 = missing
                .iter()
                .flat_map(|(_, r)| r.iter().map(|r| r.end() - r.start() + 1))
                .sum();
            if let Some((origin, ranges)) = missing.first() {
                let id = RecordId {
                    origin: *origin,
                    seq: *ranges[0].start(),
                };
                let detail = format!(
                    "{lacking} ids other nodes cover are missing here {bound:.0} ms after the heal (the bound)"
                );
                self.oracle
                    .violate(now, "no-convergence", Some(i), Some(id), detail);
                named = true;
            }
        }
        if !named {
            let detail = format!(
                "every node covers the same ids, but their digests of live records still differ {bound:.0} ms after the heal"
            );
            self.oracle
                .violate(now, "no-convergence", None, None, detail);
        }
        self.end();
    }

    pub(crate) fn end(&mut self) {
        if self.ended {
            return;
        }
        if let (Some(converged), Some(due)) = (self.converged_at, self.receipts_due) {
            // Only a record's origin is told at once; every other node learns
            // who holds it from frontiers: a round (jittered up to 1.5
            // periods) for a direct peer, a second for one a peer relays to;
            // after a message lost on a live connection (chaos), up to the
            // next whole body, three frontiers on. A round with each peer
            // comes less often the more peers a node has.
            let period = self
                .nodes
                .iter()
                .filter_map(|n| Some(n.live.as_ref()?.engine.round_period()))
                .max()
                .unwrap_or_default();
            let period_ms = (period.as_millis() as u64).max(self.p.engine.anti_entropy_ms);
            let rounds = 6 * period_ms * MS;
            let due = due.max(converged + rounds);
            if let Some((i, id, detail)) = self.incomplete_receipt() {
                // Reports follow the records by up to a few frontier rounds.
                if self.now < due {
                    self.q.push(self.now + 50 * MS, Event::End);
                    return;
                }
                self.oracle
                    .violate(self.now, "receipt-incomplete", Some(i), Some(id), detail);
            }
        }
        self.ended = true;
        let cut = self.collectable_before();
        let stores: Vec<&crate::store::Store> = self.nodes.iter().map(|n| &n.store).collect();
        self.oracle.audit(self.now, &stores, cut);
        for i in 0..self.nodes.len() {
            // Every record a node holds is enforced by its index.
            let node = &self.nodes[i];
            if let Some(live) = &node.live {
                for r in node.store.records() {
                    let probe = crate::workload::exact_probe(r);
                    self.oracle
                        .check(self.now, i, &probe, live.enforcer.index(), &node.store);
                }
            }
        }
    }
}
