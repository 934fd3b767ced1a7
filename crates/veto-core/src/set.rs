//! The add-only revocation set, as a state-based and operation-based CRDT.
//!
//! Each record id moves only forward through three states: absent, present, and
//! pruned (present once, then garbage-collected after expiry). Merging takes the
//! later state per id, so merge is set union that never brings a pruned record
//! back. The frontier covers every present or pruned id.
//!
//! This type keeps records in memory: it is the reference replica used by the
//! simulator and by tests. A production node keeps the same frontier and digest
//! but its records in the store.

use std::collections::BTreeMap;

use crdts::{CmRDT, CvRDT};

use crate::digest::SetDigest;
use crate::frontier::Frontier;
use crate::id::RecordId;
use crate::record::Record;

/// An operation on the set, as replicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Add a record.
    Add(Record),
    /// Forget an expired record for good.
    Prune(RecordId),
}

/// Two replicas disagree about the content of one record id, which means an origin
/// reused a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("two different records claim id {0}")]
pub struct ConflictingRecord(pub RecordId);

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The record is new here.
    New,
    /// The record was already present.
    Duplicate,
    /// The record was present once and pruned: it stays gone.
    AlreadyPruned,
}

/// The replicated set of revocation records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationSet {
    records: BTreeMap<RecordId, Record>,
    covered: Frontier,
    digest: SetDigest,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> RevocationSet {
        RevocationSet::default()
    }

    /// Adds a record unless it is already present or pruned.
    pub fn insert(&mut self, record: Record) -> Inserted {
        if self.records.contains_key(&record.id) {
            return Inserted::Duplicate;
        }
        if self.covered.contains(record.id) {
            return Inserted::AlreadyPruned;
        }
        self.covered.insert(record.id);
        self.digest.add(&record.fingerprint());
        self.records.insert(record.id, record);
        Inserted::New
    }

    /// Prunes a record: removes its data and keeps its id covered. Returns the
    /// record if it was present.
    pub fn prune(&mut self, id: RecordId) -> Option<Record> {
        self.covered.insert(id);
        let record = self.records.remove(&id)?;
        self.digest.remove(&record.fingerprint());
        Some(record)
    }

    /// Prunes every record whose `expires_at + grace` is before `now` (Unix seconds).
    pub fn prune_expired(&mut self, now: u64, grace: u64) -> Vec<Record> {
        let expired: Vec<RecordId> = self
            .records
            .values()
            .filter(|r| r.expires_at.saturating_add(grace) < now)
            .map(|r| r.id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.prune(id))
            .collect()
    }

    /// The record with this id, if present.
    pub fn get(&self, id: RecordId) -> Option<&Record> {
        self.records.get(&id)
    }

    /// Whether the id was ever seen here (present or pruned).
    pub fn covers(&self, id: RecordId) -> bool {
        self.covered.contains(id)
    }

    /// Live records, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Number of live records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no live records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every id present or pruned.
    pub fn frontier(&self) -> &Frontier {
        &self.covered
    }

    /// The digest of the live records.
    pub fn digest(&self) -> SetDigest {
        self.digest
    }

    fn pruned_ids(&self) -> Vec<RecordId> {
        self.covered
            .origins()
            .flat_map(|(origin, seqs)| {
                seqs.ranges()
                    .flatten()
                    .map(move |seq| RecordId { origin, seq })
                    .filter(|id| !self.records.contains_key(id))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl CvRDT for RevocationSet {
    type Validation = ConflictingRecord;

    fn validate_merge(&self, other: &Self) -> Result<(), ConflictingRecord> {
        for (id, theirs) in &other.records {
            if self.records.get(id).is_some_and(|mine| mine != theirs) {
                return Err(ConflictingRecord(*id));
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: Self) {
        for id in other.pruned_ids() {
            self.prune(id);
        }
        for record in other.records.into_values() {
            self.insert(record);
        }
    }
}

impl CmRDT for RevocationSet {
    type Op = SetOp;
    type Validation = ConflictingRecord;

    fn validate_op(&self, op: &SetOp) -> Result<(), ConflictingRecord> {
        match op {
            SetOp::Add(r) if self.records.get(&r.id).is_some_and(|mine| mine != r) => {
                Err(ConflictingRecord(r.id))
            }
            _ => Ok(()),
        }
    }

    fn apply(&mut self, op: SetOp) {
        match op {
            SetOp::Add(record) => {
                self.insert(record);
            }
            SetOp::Prune(id) => {
                self.prune(id);
            }
        }
    }
}
