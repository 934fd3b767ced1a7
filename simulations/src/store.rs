//! A node's durable store, in memory: what survives a crash.
//!
//! It keeps the semantics of veto-store: records by id, a covered frontier
//! that pruning never shrinks (an expired record's id stays covered, so it is
//! never taken in again), the set digest, kept incrementally, and the
//! durability marker: the highest covered count ever made durable, which a
//! damaged log cannot take back with it. The durable part is an [`Image`],
//! which a backup or a clone copies whole; its log of recent writes lets a
//! fault cut the tail off (see `damage.rs`).

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::RangeInclusive;

use veto_core::{Frontier, Hlc, NodeId, Record, RecordId, SetDigest};
use veto_gossip::engine::{held_ranges, RecordSource, SourceUnavailable};
use veto_gossip::proto::Holding;

use crate::rng::mix;
use crate::sched::Time;

#[derive(Clone)]
pub(crate) struct Stored {
    pub(crate) record: Record,
    fingerprint: [u8; 32],
}

/// Seq ranges per origin that a cover added.
pub(crate) type Spans = Vec<(NodeId, RangeInclusive<u64>)>;

/// How many of its last durable writes a store remembers, so that a damaged
/// log can lose them.
pub(crate) const MAX_LOG: usize = 256;

/// One durable write: what it added, so that a cut log can take it back.
#[derive(Clone, Default)]
pub(crate) struct Write {
    /// Ids it covered with their data.
    pub(crate) stored: Vec<RecordId>,
    /// Ids it covered without data.
    pub(crate) covered: Spans,
    /// Ids already covered whose data it stored again.
    pub(crate) restored: Vec<RecordId>,
    /// If it raised the last local stamp: the value before.
    pub(crate) stamp_before: Option<Option<Hlc>>,
}

impl Write {
    fn is_empty(&self) -> bool {
        self.stored.is_empty()
            && self.covered.is_empty()
            && self.restored.is_empty()
            && self.stamp_before.is_none()
    }
}

/// Everything durable: what a crash keeps and a backup or a clone copies.
#[derive(Clone, Default)]
pub(crate) struct Image {
    pub(crate) records: BTreeMap<RecordId, Stored>,
    /// Every id held or once held: what the engine may advertise. Always the
    /// ids of `records` plus `dataless`.
    pub(crate) covered: Frontier,
    pub(crate) covered_count: u64,
    /// Ids covered without data: pruned here, cleared by a peer that pruned
    /// them, or whose data a fault destroyed. May also hold ids whose data was
    /// stored again since.
    pub(crate) dataless: Frontier,
    pub(crate) digest: SetDigest,
    /// The same per origin, as the engine's holdings.
    pub(crate) per_origin: BTreeMap<NodeId, SetDigest>,
    /// (expires_at, id) of every held record, for garbage collection.
    pub(crate) expiry: BTreeSet<(u64, RecordId)>,
    /// The durability marker: the highest covered count a write made durable.
    pub(crate) marker: u64,
    /// The highest stamp the node gave a record, kept with its local writes
    /// (production's last local stamp): a restart never stamps below it.
    pub(crate) last_stamp: Option<Hlc>,
    /// The last durable writes, oldest first.
    pub(crate) log: VecDeque<Write>,
}

pub(crate) struct Store {
    pub(crate) d: Image,
    /// The write being made (committed by [`Store::commit`]).
    open: Write,
    /// Chance that a read fails, and the counter that makes failures
    /// deterministic without a generator behind `&self`.
    pub(crate) read_fail_prob: f64,
    reads: Cell<u64>,
    read_seed: u64,
    pub(crate) read_failures: Cell<u64>,
    /// Deliberate bug: records of this origin are dropped on persist.
    pub(crate) drop_origin: Option<NodeId>,
    /// Deliberate bug: the ids of recent writes, which a crash may lose.
    pub(crate) journal: Option<Vec<(Time, RecordId)>>,
}

impl Store {
    pub(crate) fn new(read_seed: u64) -> Store {
        Store {
            d: Image::default(),
            open: Write::default(),
            read_fail_prob: 0.0,
            reads: Cell::new(0),
            read_seed,
            read_failures: Cell::new(0),
            drop_origin: None,
            journal: None,
        }
    }

    /// Stores a record unless its id is covered. Returns whether it was new.
    pub(crate) fn insert(&mut self, now: Time, record: Record) -> bool {
        if self.drop_origin == Some(record.id.origin) {
            // The bug: the write is silently lost, yet reported durable.
            return false;
        }
        if !self.d.covered.insert(record.id) {
            return false;
        }
        self.d.covered_count += 1;
        self.open.stored.push(record.id);
        self.hold(now, record);
        true
    }

    /// Stores the data of a record (its id already covered).
    fn hold(&mut self, now: Time, record: Record) {
        let fingerprint = record.fingerprint();
        self.d.digest.add(&fingerprint);
        self.d
            .per_origin
            .entry(record.id.origin)
            .or_default()
            .add(&fingerprint);
        self.d.expiry.insert((record.expires_at, record.id));
        if let Some(journal) = &mut self.journal {
            journal.push((now, record.id));
        }
        self.d.records.insert(
            record.id,
            Stored {
                record,
                fingerprint,
            },
        );
    }

    /// Stores a record again under an id covered without data. Returns
    /// whether it was stored.
    pub(crate) fn restore(&mut self, now: Time, record: Record) -> bool {
        if !self.d.covered.contains(record.id) || self.d.records.contains_key(&record.id) {
            return false;
        }
        self.open.restored.push(record.id);
        self.hold(now, record);
        true
    }

    /// Forgets the data of a held record, keeping the id covered only if it is
    /// in `dataless` (the caller's business).
    pub(crate) fn drop_data(&mut self, id: RecordId) -> Option<Stored> {
        let stored = self.d.records.remove(&id)?;
        self.d.digest.remove(&stored.fingerprint);
        if let Some(d) = self.d.per_origin.get_mut(&id.origin) {
            d.remove(&stored.fingerprint);
        }
        self.d.expiry.remove(&(stored.record.expires_at, id));
        Some(stored)
    }

    /// Covers ids without data. Returns the spans that were not covered before.
    pub(crate) fn cover(&mut self, cover: &Frontier) -> Spans {
        let mut fresh = Vec::new();
        for (origin, seqs) in cover.origins() {
            let have = self.d.covered.origin(origin);
            for range in seqs.ranges() {
                let lacking = match have {
                    Some(h) => veto_core::SeqSet::from_ranges([range]).difference(h),
                    None => vec![range],
                };
                fresh.extend(lacking.into_iter().map(|r| (origin, r)));
            }
        }
        for (origin, r) in &fresh {
            self.d.covered_count += r.end() - r.start() + 1;
            self.d.covered.insert_range(*origin, r.clone());
            self.d.dataless.insert_range(*origin, r.clone());
        }
        self.open.covered.extend(fresh.iter().cloned());
        fresh
    }

    /// The write being made holds records this node made, stamped up to
    /// `stamp`: it keeps the highest stamp as the last local stamp.
    pub(crate) fn note_local_stamp(&mut self, stamp: Hlc) {
        if self.open.stamp_before.is_none() {
            self.open.stamp_before = Some(self.d.last_stamp);
        }
        self.d.last_stamp = Some(self.d.last_stamp.map_or(stamp, |s| s.max(stamp)));
    }

    /// The last local stamp the store keeps.
    pub(crate) fn last_stamp(&self) -> Option<Hlc> {
        self.d.last_stamp
    }

    /// The write made since the last commit is durable: it joins the log, and
    /// the marker rises to the covered count (production writes the marker
    /// after every flush).
    pub(crate) fn commit(&mut self) {
        let write = std::mem::take(&mut self.open);
        if !write.is_empty() {
            self.d.log.push_back(write);
            if self.d.log.len() > MAX_LOG {
                self.d.log.pop_front();
            }
        }
        self.d.marker = self.d.marker.max(self.d.covered_count);
    }

    /// Up to `limit` held records past `expires_at + grace` at local time
    /// `now_secs`, the earliest expiry first.
    pub(crate) fn expired(&self, now_secs: u64, grace_secs: u64, limit: usize) -> Vec<Record> {
        self.d
            .expiry
            .iter()
            .take_while(|(expires_at, _)| expires_at.saturating_add(grace_secs) < now_secs)
            .filter_map(|(_, id)| self.d.records.get(id))
            .take(limit)
            .map(|s| s.record.clone())
            .collect()
    }

    /// Garbage collection: drops the data of `ids`, keeping them covered.
    /// Returns how many it dropped.
    pub(crate) fn prune(&mut self, ids: &[RecordId]) -> usize {
        let mut pruned = 0;
        for id in ids {
            if self.drop_data(*id).is_some() {
                self.d.dataless.insert(*id);
                pruned += 1;
            }
        }
        pruned
    }

    /// The bug `lose-unsynced`: a crash at `now` loses every write made after
    /// `since`, data and coverage alike. Returns the lost ids.
    pub(crate) fn lose_writes_since(&mut self, since: Time) -> Vec<RecordId> {
        let Some(journal) = &mut self.journal else {
            return Vec::new();
        };
        let lost: Vec<RecordId> = journal
            .iter()
            .filter(|(t, _)| *t > since)
            .map(|(_, id)| *id)
            .collect();
        journal.clear();
        for id in &lost {
            self.drop_data(*id);
        }
        self.rebuild_covered();
        lost
    }

    /// Recomputes the covered frontier from the held records and `dataless`.
    pub(crate) fn rebuild_covered(&mut self) {
        let mut covered = self.d.dataless.clone();
        for id in self.d.records.keys() {
            covered.insert(*id);
        }
        self.d.covered_count = covered.count();
        self.d.covered = covered;
    }

    /// A copy of the durable state.
    pub(crate) fn image(&self) -> Image {
        self.d.clone()
    }

    /// Replaces the durable state (a restored backup, a cloned directory).
    pub(crate) fn install(&mut self, image: Image) {
        self.d = image;
        self.open = Write::default();
        if let Some(journal) = &mut self.journal {
            journal.clear();
        }
    }

    pub(crate) fn has(&self, id: RecordId) -> bool {
        self.d.records.contains_key(&id)
    }

    pub(crate) fn covers(&self, id: RecordId) -> bool {
        self.d.covered.contains(id)
    }

    pub(crate) fn covered(&self) -> &Frontier {
        &self.d.covered
    }

    pub(crate) fn covered_count(&self) -> u64 {
        self.d.covered_count
    }

    /// The durability marker.
    pub(crate) fn marker(&self) -> u64 {
        self.d.marker
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.d.records.values().map(|s| &s.record)
    }

    /// How many records the store holds with data.
    pub(crate) fn held_count(&self) -> usize {
        self.d.records.len()
    }

    /// The digest of the records that expire at or after `cut` (Unix
    /// seconds): those that no node may have collected yet.
    pub(crate) fn digest_from(&self, cut: u64) -> SetDigest {
        let mut digest = self.d.digest;
        for (_, id) in self.d.expiry.range(
            ..(
                cut,
                RecordId {
                    origin: NodeId::new(0),
                    seq: 0,
                },
            ),
        ) {
            if let Some(stored) = self.d.records.get(id) {
                digest.remove(&stored.fingerprint);
            }
        }
        digest
    }

    /// The most ranges of held seqs any one origin has here: how fragmented
    /// a `Held` description of this store is.
    pub(crate) fn max_held_ranges(&self) -> usize {
        let mut most = 0;
        for (origin, seqs) in self.d.covered.origins() {
            let Some(last) = seqs.max() else {
                continue;
            };
            let (ranges, _) = self
                .held(origin, 1..=last, usize::MAX)
                .unwrap_or((Vec::new(), 0));
            most = most.max(ranges.len());
        }
        most
    }
}

impl RecordSource for Store {
    fn read_range(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max: usize,
    ) -> Result<Vec<Record>, SourceUnavailable> {
        let n = self.reads.get().wrapping_add(1);
        self.reads.set(n);
        if self.read_fail_prob > 0.0 {
            let dice = (mix(self.read_seed ^ n) >> 11) as f64 / (1u64 << 53) as f64;
            if dice < self.read_fail_prob {
                self.read_failures.set(self.read_failures.get() + 1);
                return Err(SourceUnavailable);
            }
        }
        let span = RecordId::span(origin, &seqs);
        Ok(self
            .d
            .records
            .range(span)
            .take(max)
            .map(|(_, s)| s.record.clone())
            .collect())
    }

    fn holdings(&self) -> Vec<(NodeId, Holding)> {
        self.d
            .per_origin
            .iter()
            .filter(|(_, d)| d.count() > 0)
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
        let held = self.d.records.range(span).map(|(id, _)| id.seq);
        Ok(held_ranges(held, seqs, max_ranges))
    }
}
