//! A node's durable store, in memory: what survives a crash.
//!
//! It keeps the semantics of veto-store: records by id, a covered frontier
//! that pruning never shrinks (an expired record's id stays covered, so it is
//! never taken in again), and the set digest, kept incrementally.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use veto_core::{Frontier, NodeId, Record, RecordId, SetDigest};
use veto_gossip::engine::{held_ranges, RecordSource, SourceUnavailable};
use veto_gossip::proto::Holding;

use crate::rng::mix;
use crate::sched::Time;

struct Stored {
    record: Record,
    fingerprint: [u8; 32],
}

/// Seq ranges per origin that a cover added.
pub(crate) type Spans = Vec<(NodeId, RangeInclusive<u64>)>;

pub(crate) struct Store {
    records: BTreeMap<RecordId, Stored>,
    /// Every id held or once held: what the engine may advertise.
    covered: Frontier,
    covered_count: u64,
    /// Ids covered without data: pruned here, or received already expired,
    /// or cleared by a peer that pruned them.
    dataless: Frontier,
    digest: SetDigest,
    /// The same per origin, as the engine's holdings.
    per_origin: BTreeMap<NodeId, SetDigest>,
    /// (expires_at, id) of every held record, for garbage collection.
    expiry: BTreeSet<(u64, RecordId)>,
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
            records: BTreeMap::new(),
            covered: Frontier::new(),
            covered_count: 0,
            dataless: Frontier::new(),
            digest: SetDigest::new(),
            per_origin: BTreeMap::new(),
            expiry: BTreeSet::new(),
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
        if !self.covered.insert(record.id) {
            return false;
        }
        self.covered_count += 1;
        self.hold(now, record);
        true
    }

    /// Stores the data of a record (its id already covered).
    fn hold(&mut self, now: Time, record: Record) {
        let fingerprint = record.fingerprint();
        self.digest.add(&fingerprint);
        self.per_origin
            .entry(record.id.origin)
            .or_default()
            .add(&fingerprint);
        self.expiry.insert((record.expires_at, record.id));
        if let Some(journal) = &mut self.journal {
            journal.push((now, record.id));
        }
        self.records.insert(
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
        if !self.covered.contains(record.id) || self.records.contains_key(&record.id) {
            return false;
        }
        self.hold(now, record);
        true
    }

    /// Forgets the data of a held record, keeping the id covered.
    fn drop_data(&mut self, id: RecordId) -> Option<Stored> {
        let stored = self.records.remove(&id)?;
        self.digest.remove(&stored.fingerprint);
        if let Some(d) = self.per_origin.get_mut(&id.origin) {
            d.remove(&stored.fingerprint);
        }
        self.expiry.remove(&(stored.record.expires_at, id));
        Some(stored)
    }

    /// Covers ids without data. Returns the spans that were not covered before.
    pub(crate) fn cover(&mut self, cover: &Frontier) -> Spans {
        let mut fresh = Vec::new();
        for (origin, seqs) in cover.origins() {
            let have = self.covered.origin(origin);
            for range in seqs.ranges() {
                let lacking = match have {
                    Some(h) => veto_core::SeqSet::from_ranges([range]).difference(h),
                    None => vec![range],
                };
                fresh.extend(lacking.into_iter().map(|r| (origin, r)));
            }
        }
        for (origin, r) in &fresh {
            self.covered_count += r.end() - r.start() + 1;
            self.covered.insert_range(*origin, r.clone());
            self.dataless.insert_range(*origin, r.clone());
        }
        fresh
    }

    /// Garbage collection: drops every record past `expires_at + grace` at
    /// local time `now_secs`, keeping its id covered. Returns them.
    pub(crate) fn prune_expired(&mut self, now_secs: u64, grace_secs: u64) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(&(expires_at, id)) = self.expiry.first() {
            if expires_at.saturating_add(grace_secs) >= now_secs {
                break;
            }
            if let Some(stored) = self.drop_data(id) {
                self.dataless.insert(id);
                out.push(stored.record);
            }
        }
        out
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
        let mut covered = self.dataless.clone();
        for id in self.records.keys() {
            covered.insert(*id);
        }
        self.covered_count = covered.count();
        self.covered = covered;
        lost
    }

    pub(crate) fn has(&self, id: RecordId) -> bool {
        self.records.contains_key(&id)
    }

    pub(crate) fn covers(&self, id: RecordId) -> bool {
        self.covered.contains(id)
    }

    pub(crate) fn covered(&self) -> &Frontier {
        &self.covered
    }

    pub(crate) fn covered_count(&self) -> u64 {
        self.covered_count
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values().map(|s| &s.record)
    }

    /// The digest of the records that expire at or after `cut` (Unix
    /// seconds): those that no node may have collected yet.
    pub(crate) fn digest_from(&self, cut: u64) -> SetDigest {
        let mut digest = self.digest;
        for (_, id) in self.expiry.range(
            ..(
                cut,
                RecordId {
                    origin: NodeId::new(0),
                    seq: 0,
                },
            ),
        ) {
            if let Some(stored) = self.records.get(id) {
                digest.remove(&stored.fingerprint);
            }
        }
        digest
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
        let lo = RecordId {
            origin,
            seq: *seqs.start(),
        };
        let hi = RecordId {
            origin,
            seq: *seqs.end(),
        };
        Ok(self
            .records
            .range(lo..=hi)
            .take(max)
            .map(|(_, s)| s.record.clone())
            .collect())
    }

    fn holdings(&self) -> Vec<(NodeId, Holding)> {
        self.per_origin
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
        let lo = RecordId {
            origin,
            seq: *seqs.start(),
        };
        let hi = RecordId {
            origin,
            seq: *seqs.end(),
        };
        let held = self.records.range(lo..=hi).map(|(id, _)| id.seq);
        Ok(held_ranges(held, seqs, max_ranges))
    }
}
