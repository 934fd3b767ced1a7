//! What a [`crate::LocalCache`] answers from: veto-core's lookup index, plus
//! the little of each record a revoked answer shows.

use std::collections::HashMap;
use std::sync::Arc;

use veto_core::{Check, LookupIndex, Record, RecordId, ScopeKind};

use crate::types::Revoked;

/// Per record, what a revoked answer needs beyond the index's hit.
struct Meta {
    reason: Arc<str>,
    revoked_at: u64,
}

/// The index and the records' notes.
pub(crate) struct CacheIndex {
    index: LookupIndex,
    meta: HashMap<RecordId, Meta>,
    /// Shared by every record without a reason, the usual case, so that a
    /// million of them do not cost a million allocations.
    empty: Arc<str>,
    /// The earliest `expires_at` held: once it is past, a reload would shed
    /// records the node has pruned.
    earliest_expiry: u64,
}

impl CacheIndex {
    pub(crate) fn new() -> CacheIndex {
        CacheIndex {
            index: LookupIndex::new(),
            meta: HashMap::new(),
            empty: Arc::from(""),
            earliest_expiry: u64::MAX,
        }
    }

    /// Adds a record. A record seen twice (in a snapshot and again on the
    /// watch stream) changes nothing the second time.
    pub(crate) fn apply(&mut self, record: &Record) {
        if let Err(e) = self.index.insert_record(record) {
            // The node cannot index such a record either; say so rather than
            // fail the whole cache.
            tracing::error!(id = %record.id, error = %e, "record not indexed");
            return;
        }
        let reason = if record.reason.is_empty() {
            Arc::clone(&self.empty)
        } else {
            Arc::from(record.reason.as_str())
        };
        self.meta.insert(
            record.id,
            Meta {
                reason,
                revoked_at: record.revoked_at(),
            },
        );
        self.earliest_expiry = self.earliest_expiry.min(record.expires_at);
    }

    /// Reserves room for `n` more token records.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.index.reserve_tokens(n);
        self.meta.reserve(n);
    }

    /// The record revoking this token, if any.
    #[inline]
    pub(crate) fn check(&self, check: &Check<'_>) -> Option<Revoked> {
        let hit = self.index.check(check)?;
        Some(self.revoked(hit.scope, hit.record))
    }

    #[cold]
    fn revoked(&self, scope: ScopeKind, id: RecordId) -> Revoked {
        let (reason, revoked_at) = self
            .meta
            .get(&id)
            .map_or((Arc::clone(&self.empty), 0), |m| {
                (Arc::clone(&m.reason), m.revoked_at)
            });
        Revoked {
            scope,
            id,
            reason,
            revoked_at,
        }
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.meta.len()
    }

    pub(crate) fn earliest_expiry(&self) -> u64 {
        self.earliest_expiry
    }
}
