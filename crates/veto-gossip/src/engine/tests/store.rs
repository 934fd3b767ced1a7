//! An in-memory record store with the same semantics as veto-store: records
//! by id, a covered frontier that pruning never shrinks, and the set digest.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use veto_core::{Frontier, NodeId, Record, RecordId, SetDigest};

use crate::engine::{held_ranges, RecordSource, SourceUnavailable};
use crate::proto::Holding;

#[derive(Default)]
pub(super) struct Store {
    records: BTreeMap<RecordId, Record>,
    covered: Frontier,
    digest: SetDigest,
    per_origin: BTreeMap<NodeId, SetDigest>,
    /// The largest `max` any read asked for.
    pub(super) max_read: Cell<usize>,
    /// Reads still to fail.
    pub(super) failing_reads: Cell<u32>,
}

impl Store {
    /// Stores a record unless its id is covered; returns whether it was new.
    pub(super) fn insert(&mut self, record: Record) -> bool {
        if !self.covered.insert(record.id) {
            return false;
        }
        self.hold(record);
        true
    }

    fn hold(&mut self, record: Record) {
        let fp = record.fingerprint();
        self.digest.add(&fp);
        self.per_origin
            .entry(record.id.origin)
            .or_default()
            .add(&fp);
        self.records.insert(record.id, record);
    }

    /// Stores a record again for an id covered without data.
    pub(super) fn restore(&mut self, record: Record) {
        if self.covered.contains(record.id) && !self.records.contains_key(&record.id) {
            self.hold(record);
        }
    }

    /// Loses a record's data but keeps its id covered, as a damaged disk
    /// might (a prune without the garbage collector deciding it).
    pub(super) fn lose(&mut self, id: RecordId) {
        self.prune(id);
    }

    pub(super) fn cover(&mut self, frontier: &Frontier) {
        self.covered.union_with(frontier);
    }

    /// Garbage collection: drops the data, keeps the id covered.
    pub(super) fn prune(&mut self, id: RecordId) {
        if let Some(r) = self.records.remove(&id) {
            let fp = r.fingerprint();
            self.digest.remove(&fp);
            if let Some(d) = self.per_origin.get_mut(&id.origin) {
                d.remove(&fp);
            }
        }
    }

    pub(super) fn prune_expired(&mut self, now_secs: u64, grace_secs: u64) {
        let expired: Vec<RecordId> = self
            .records
            .values()
            .filter(|r| r.expires_at + grace_secs < now_secs)
            .map(|r| r.id)
            .collect();
        for id in expired {
            self.prune(id);
        }
    }

    pub(super) fn get(&self, id: RecordId) -> Option<&Record> {
        self.records.get(&id)
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    pub(super) fn frontier(&self) -> &Frontier {
        &self.covered
    }

    pub(super) fn digest(&self) -> SetDigest {
        self.digest
    }
}

impl RecordSource for Store {
    fn read_range(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max: usize,
    ) -> Result<Vec<Record>, SourceUnavailable> {
        self.max_read.set(self.max_read.get().max(max));
        if self.failing_reads.get() > 0 {
            self.failing_reads.set(self.failing_reads.get() - 1);
            return Err(SourceUnavailable);
        }
        let span = RecordId::span(origin, &seqs);
        Ok(self
            .records
            .range(span)
            .take(max)
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn holdings(&self) -> Vec<(NodeId, Holding)> {
        self.per_origin
            .iter()
            .map(|(o, d)| (*o, Holding::of(d)))
            .collect()
    }

    fn held(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max_ranges: usize,
    ) -> Result<(Vec<RangeInclusive<u64>>, u64), SourceUnavailable> {
        let span = RecordId::span(origin, &seqs);
        let held = self.records.range(span).map(|(id, _)| id.seq);
        Ok(held_ranges(held, seqs, max_ranges))
    }
}
