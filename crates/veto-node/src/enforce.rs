//! The lookup index a node answers from, kept in step with what is durable.

use veto_core::index::IndexError;
use veto_core::{Check, Hit, LookupIndex, Record, RecordId};

/// The records this node enforces: exactly the durable ones it holds.
#[derive(Default)]
pub struct Enforcer {
    index: LookupIndex,
}

impl Enforcer {
    /// Enforces from an index built at start from the store.
    pub fn from_index(index: LookupIndex) -> Enforcer {
        Enforcer { index }
    }

    /// Enforces `records`, which just became durable. Returns those the
    /// index refused (only a 2^48 seq or 65,536 origins): they stay stored
    /// and replicated, but this node cannot answer for them.
    pub fn enforce(&mut self, records: &[Record]) -> Vec<(RecordId, IndexError)> {
        let mut refused = Vec::new();
        for record in records {
            if let Err(e) = self.index.insert_record(record) {
                refused.push((record.id, e));
            }
        }
        refused
    }

    /// Stops enforcing `records`, which garbage collection pruned.
    pub fn forget(&mut self, records: &[Record]) {
        for record in records {
            self.index.remove(record.id, &record.target);
        }
    }

    /// The record that revokes `check`, if one does.
    pub fn check(&self, check: &Check<'_>) -> Option<Hit> {
        self.index.check(check)
    }

    /// How many records are enforced.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is enforced.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The index itself.
    pub fn index(&self) -> &LookupIndex {
        &self.index
    }
}
