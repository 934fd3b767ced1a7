//! The global oracle and the invariants checked throughout a run.
//!
//! The oracle knows every record any node created, when it was acknowledged
//! (durable at its origin), which ids some node has legitimately forgotten
//! (its collector took them after `expires_at + grace`), and which records an
//! injected disk fault destroyed somewhere (a restored backup, a cut log, lost
//! data): those are not veto's doing. Against it, the checker asserts:
//!
//! - **no invented or altered record**: whatever an engine asks to persist is
//!   a record some node created, byte for byte;
//! - **no resurrection**: no engine asks to persist a record its store
//!   already covers, in particular one it collected;
//! - **no silent loss**: an id covered without data (a peer's `cleared`) is
//!   one that some node legitimately forgot or whose data a disk fault
//!   destroyed, and a record the engine was told is durable is in the store;
//!   a node whose log was cut reports the ids it lost when it starts;
//! - **durable means durable**: a record once stored at a node stays there
//!   until that node's garbage collector takes it, crashes included (a disk
//!   fault excepted);
//! - **no false revocation**: a check answered "revoked" names a record that
//!   some node created, that matches the check (`Check::matched_by`), and
//!   that the node still holds;
//! - **enforcement is monotone**: a check aimed at a record the node holds
//!   comes out revoked;
//! - **convergence**: after the heal, every node covers the same ids and has
//!   the same digest of the records no node may have collected yet, within
//!   the bound of `crate::bound` (checked by the world);
//! - **delivery**: then every acknowledged record is at every node, unless
//!   legitimately forgotten, or destroyed by disk faults wherever it was held
//!   (see `audit.rs`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use veto_core::{Frontier, LookupIndex, Record, RecordId};

use crate::sched::{Time, MS};
use crate::store::Store;
use crate::workload::CheckSpec;

/// An invariant that broke.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// The run's seed: `veto-sim --seed N` with the same scenario replays it.
    pub seed: u64,
    /// Simulated time, ms.
    pub at_ms: f64,
    /// Which invariant.
    pub invariant: &'static str,
    /// The node where it broke.
    pub node: Option<String>,
    /// The record concerned.
    pub record: Option<String>,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} t={:.3}s [{}]",
            self.seed,
            self.at_ms / 1e3,
            self.invariant
        )?;
        if let Some(n) = &self.node {
            write!(f, " node {n}")?;
        }
        if let Some(r) = &self.record {
            write!(f, " record {r}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// How many violations a run keeps; the first one matters most.
const MAX_VIOLATIONS: usize = 50;
/// How many of one invariant's violations a run keeps, so that one flood
/// does not hide the others.
const MAX_PER_INVARIANT: u64 = 5;

pub(crate) struct Known {
    pub(crate) record: Record,
    pub(crate) created_at: Time,
    pub(crate) acked_at: Option<Time>,
    /// Its origin's wall clock when it was acknowledged: what freshness
    /// watermarks are measured in.
    pub(crate) acked_local: Option<std::time::Duration>,
}

pub(crate) struct Oracle {
    seed: u64,
    pub(crate) grace_secs: u64,
    /// The maximum clock offset, in whole seconds rounded up, plus one.
    pub(crate) offset_secs: u64,
    names: Vec<String>,
    pub(crate) records: BTreeMap<RecordId, Known>,
    /// Ids in creation order, for probes.
    pub(crate) order: Vec<RecordId>,
    /// Ids some node legitimately forgot.
    pub(crate) forgotten: Frontier,
    /// Per node: ids ever stored there with data (since its last disk fault).
    pub(crate) held: Vec<Frontier>,
    /// Per node: ids its garbage collector took.
    pub(crate) pruned: Vec<Frontier>,
    /// Ids whose data an injected disk fault destroyed at some node.
    pub(crate) damaged: Frontier,
    /// Per node: covered ids its last cut log lost, which the node must
    /// report at its next start (count, one of them).
    pub(crate) expect_report: Vec<Option<(u64, Option<RecordId>)>>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) violation_count: u64,
    pub(crate) by_invariant: BTreeMap<&'static str, u64>,
}

impl Oracle {
    pub(crate) fn new(
        seed: u64,
        grace_secs: u64,
        max_offset_ms: u64,
        names: Vec<String>,
    ) -> Oracle {
        let n = names.len();
        Oracle {
            seed,
            grace_secs,
            offset_secs: max_offset_ms.div_ceil(1000) + 1,
            names,
            records: BTreeMap::new(),
            order: Vec::new(),
            forgotten: Frontier::new(),
            held: vec![Frontier::new(); n],
            pruned: vec![Frontier::new(); n],
            damaged: Frontier::new(),
            expect_report: vec![None; n],
            violations: Vec::new(),
            violation_count: 0,
            by_invariant: BTreeMap::new(),
        }
    }

    pub(crate) fn violate(
        &mut self,
        now: Time,
        invariant: &'static str,
        node: Option<usize>,
        record: Option<RecordId>,
        detail: String,
    ) {
        self.violation_count += 1;
        let seen = self.by_invariant.entry(invariant).or_default();
        *seen += 1;
        if *seen > MAX_PER_INVARIANT || self.violations.len() >= MAX_VIOLATIONS {
            return;
        }
        self.violations.push(Violation {
            seed: self.seed,
            at_ms: now as f64 / MS as f64,
            invariant,
            node: node.map(|i| self.names[i].clone()),
            record: record.map(|r| r.to_string()),
            detail,
        });
    }

    /// A node created a record (not yet durable).
    pub(crate) fn created(&mut self, now: Time, node: usize, record: &Record) {
        if let Some(old) = self.records.get(&record.id) {
            if old.acked_at.is_some() {
                self.violate(
                    now,
                    "seq-reused",
                    Some(node),
                    Some(record.id),
                    "the origin issued an id it had already acknowledged for another record".into(),
                );
            }
        }
        self.records.insert(
            record.id,
            Known {
                record: record.clone(),
                created_at: now,
                acked_at: None,
                acked_local: None,
            },
        );
        self.order.push(record.id);
    }

    pub(crate) fn acked(&mut self, now: Time, local: Option<std::time::Duration>, id: RecordId) {
        if let Some(k) = self.records.get_mut(&id) {
            k.acked_at = Some(now);
            k.acked_local = local;
        }
    }

    /// Records that were never durable anywhere and died with their origin.
    pub(crate) fn lost_unacked(&mut self, ids: &[RecordId]) {
        for id in ids {
            if self.records.get(id).is_some_and(|k| k.acked_at.is_none()) {
                self.records.remove(id);
            }
        }
    }

    /// An engine asks node `node` to persist `records` and cover `cover`.
    pub(crate) fn persist_request(
        &mut self,
        now: Time,
        node: usize,
        records: &[Record],
        cover: &Frontier,
        store: &Store,
    ) {
        for r in records {
            match self.records.get(&r.id) {
                None => self.violate(
                    now,
                    "invented-record",
                    Some(node),
                    Some(r.id),
                    "asked to persist a record no node created".into(),
                ),
                Some(k) if k.record != *r => self.violate(
                    now,
                    "altered-record",
                    Some(node),
                    Some(r.id),
                    format!(
                        "asked to persist {r:?}, but the origin created {:?}",
                        k.record
                    ),
                ),
                Some(_) => {}
            }
            if store.covers(r.id) {
                let (invariant, detail) = if self.pruned[node].contains(r.id) {
                    (
                        "resurrection",
                        "asked to persist a record this node collected",
                    )
                } else {
                    (
                        "persist-covered",
                        "asked to persist a record the store already covers",
                    )
                };
                self.violate(now, invariant, Some(node), Some(r.id), detail.into());
            }
        }
        for (origin, seqs) in cover.origins() {
            for range in seqs.ranges() {
                for seq in range {
                    let id = RecordId { origin, seq };
                    if store.covers(id) {
                        continue;
                    }
                    self.covered_without_data(now, node, id);
                }
            }
        }
    }

    /// An engine asks node `node` to store `records` again under ids its
    /// store covers without data.
    pub(crate) fn restore_request(
        &mut self,
        now: Time,
        node: usize,
        records: &[Record],
        store: &Store,
    ) {
        for r in records {
            match self.records.get(&r.id) {
                Some(k) if k.record == *r => {}
                _ => self.violate(
                    now,
                    "invented-record",
                    Some(node),
                    Some(r.id),
                    "asked to restore a record no node created with this content".into(),
                ),
            }
            if !store.covers(r.id) {
                self.violate(
                    now,
                    "restore-uncovered",
                    Some(node),
                    Some(r.id),
                    "asked to restore a record its store does not cover".into(),
                );
            }
        }
    }

    /// Node `node` is about to cover `id` without its data. Since records
    /// are no longer dropped on receipt, that is right only if some node's
    /// collector took the record (the peer that cleared it, or the one it
    /// heard it from), or a disk fault destroyed its data where it was held.
    pub(crate) fn covered_without_data(&mut self, now: Time, node: usize, id: RecordId) {
        let Some(k) = self.records.get(&id) else {
            return self.violate(
                now,
                "cleared-unknown",
                Some(node),
                Some(id),
                "covers without data a seq no node created: a later record with this id would be ignored".into(),
            );
        };
        if self.forgotten.contains(id) || self.damaged.contains(id) {
            return;
        }
        let detail = format!(
            "covers without data a record that expires at {} (+{} s grace), which no node has collected: the record is lost here",
            k.record.expires_at, self.grace_secs
        );
        self.violate(now, "cleared-live-record", Some(node), Some(id), detail);
    }

    /// Node `node` now holds `id` with data.
    pub(crate) fn stored(&mut self, node: usize, id: RecordId) {
        self.held[node].insert(id);
    }

    /// Node `node`'s collector took `record` at local time `local_secs`, when
    /// the cluster's clocks read `cluster_secs` (their median, if most of
    /// them agree); `why` says what the node knew of its clock, for the
    /// report.
    pub(crate) fn pruned(
        &mut self,
        now: Time,
        node: usize,
        (local_secs, cluster_secs): (u64, Option<u64>),
        record: &Record,
        why: &dyn Fn() -> String,
    ) {
        let due = record.expires_at.saturating_add(self.grace_secs);
        if due >= local_secs {
            self.violate(
                now,
                "early-gc",
                Some(node),
                Some(record.id),
                "collected before expires_at + grace".into(),
            );
        } else if let Some(cluster_secs) =
            cluster_secs.filter(|c| due >= c.saturating_add(self.offset_secs))
        {
            // The node's clock is ahead of the cluster's by more than the
            // tolerated offset.
            let detail = format!(
                "collected at {local_secs} by this node's clock, but the cluster's clocks read {cluster_secs}: \
                 expires_at + grace is {due}, so the cluster still needs it for {} s ({})",
                due - cluster_secs,
                why()
            );
            self.violate(
                now,
                "gc-by-wrong-clock",
                Some(node),
                Some(record.id),
                detail,
            );
        }
        self.pruned[node].insert(record.id);
        self.forgotten.insert(record.id);
    }

    /// After a persist completed and the engine was told: every record asked
    /// for must be in the store.
    pub(crate) fn durable(&mut self, now: Time, node: usize, records: &[Record], store: &Store) {
        for r in records {
            // A write that reached the disk after a cover of the same id
            // (the id was cleared by a peer that collected it, in a request
            // made earlier) is rightly skipped.
            let skipped = store.covers(r.id)
                && (self.forgotten.contains(r.id) || self.damaged.contains(r.id));
            if !store.has(r.id) && !self.pruned[node].contains(r.id) && !skipped {
                self.violate(
                    now,
                    "durable-write-lost",
                    Some(node),
                    Some(r.id),
                    "the engine was told the record is durable, but the store does not hold it"
                        .into(),
                );
            }
        }
    }

    /// Whether `id` was stored at `node` and must still be there.
    pub(crate) fn must_hold(&self, node: usize, id: RecordId) -> bool {
        self.held[node].contains(id) && !self.pruned[node].contains(id)
    }

    /// A check answered at `node` by its index.
    pub(crate) fn check(
        &mut self,
        now: Time,
        node: usize,
        spec: &CheckSpec,
        index: &LookupIndex,
        store: &Store,
    ) -> bool {
        let check = spec.as_check();
        let hit = index.check(&check);
        if let Some(hit) = hit {
            match self.records.get(&hit.record) {
                None => self.violate(
                    now,
                    "false-revocation",
                    Some(node),
                    Some(hit.record),
                    format!("check {check:?} answered revoked by a record no node created"),
                ),
                Some(k) if !check.matched_by(&k.record.target) => self.violate(
                    now,
                    "false-revocation",
                    Some(node),
                    Some(hit.record),
                    format!(
                        "check {check:?} answered revoked by {:?}, which does not match it",
                        k.record.target
                    ),
                ),
                Some(_) if !store.has(hit.record) => self.violate(
                    now,
                    "stale-enforcement",
                    Some(node),
                    Some(hit.record),
                    "answered revoked by a record the node no longer holds (collected or lost)"
                        .into(),
                ),
                Some(_) => {}
            }
        }
        if let Some(probe) = spec.probe {
            if self.must_hold(node, probe) && !store.has(probe) {
                self.violate(
                    now,
                    "durable-record-lost",
                    Some(node),
                    Some(probe),
                    "the node stored this record and has not collected it, but no longer holds it"
                        .into(),
                );
            } else if store.has(probe) && hit.is_none() {
                self.violate(
                    now,
                    "enforcement-lost",
                    Some(node),
                    Some(probe),
                    format!("the node holds the record, but check {check:?} came out not revoked"),
                );
            }
        }
        hit.is_some()
    }
}
