//! Writes: appending records, covering ids without data, and pruning.
//!
//! Every write is one sled transaction over all the trees it touches, the
//! persisted frontier and digest included. sled seals a transaction's log entries
//! as one batch, so after a crash either all of it is on disk or none of it is:
//! the frontier never covers a record whose data is missing. Each write then
//! flushes before it returns.
//!
//! Writers hold the store's write lock while they read the chunks they rewrite
//! and commit, so chunks are never rewritten from stale copies.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Batch, Transactional};
use veto_core::{Frontier, Record, RecordId};

use crate::chunk::{self, chunk_key, Bounds, ChunkRef, Entry};
use crate::codec::{decode_record, encode_record, ordered_key};
use crate::error::StoreError;
use crate::store::{
    encode_digest, encode_frontier, encode_origin_digests, Store, Trees, KEY_DIGEST, KEY_FRONTIER,
    KEY_LAST_STAMP, KEY_LOST_RECORDS, KEY_ORIGIN_DIGESTS,
};

/// The writes of one transaction, per tree.
#[derive(Default)]
struct Writes {
    records: Batch,
    by_hlc: Batch,
    by_expiry: Batch,
    meta: Batch,
    /// Pruned records, for the index checkpoint (see `checkpoint`).
    pruned_log: Batch,
}

impl Writes {
    /// Replaces (or, with `new` = `None`, deletes) a chunk and moves its entries
    /// in the secondary indexes from its old bounds to its new ones.
    fn put_chunk(&mut self, key: &[u8; 16], old: Option<Bounds>, new: Option<(Vec<u8>, Bounds)>) {
        let new_bounds = new.as_ref().map(|(_, b)| *b);
        match new {
            Some((value, _)) => self.records.insert(key, value),
            None => self.records.remove(key),
        }
        if let Some(old) = old {
            if new_bounds.map(|b| b.max_hlc) != Some(old.max_hlc) {
                self.by_hlc.remove(&ordered_key(old.max_hlc, key));
            }
            if new_bounds.map(|b| b.min_expiry) != Some(old.min_expiry) {
                self.by_expiry.remove(&ordered_key(old.min_expiry, key));
            }
        }
        if let Some(new) = new_bounds {
            // The value carries the lowest stamp, which lets the audit skip
            // chunks wholly after its `until`.
            self.by_hlc
                .insert(&ordered_key(new.max_hlc, key), &new.min_hlc.to_be_bytes());
            if old.map(|b| b.min_expiry) != Some(new.min_expiry) {
                self.by_expiry
                    .insert(&ordered_key(new.min_expiry, key), &[]);
            }
        }
    }
}

/// A new record waiting to be merged into its chunk.
struct Pending {
    seq: u64,
    hlc: u64,
    expires_at: u64,
    bytes: Vec<u8>,
}

impl Store {
    /// Stores records durably, whether made here or received from peers, and
    /// returns the ones that were new, in input order.
    ///
    /// A record whose id is already covered (stored, pruned, or earlier in the
    /// same call) is skipped. All new records, their secondary-index entries and
    /// the updated frontier and digest are written as one atomic batch and
    /// flushed before this returns, so a caller may acknowledge them once it has
    /// the answer. On error nothing was stored: one record that cannot be encoded
    /// (larger than 64 KiB) fails the whole call.
    pub fn append(&self, records: &[Record]) -> Result<Vec<Record>, StoreError> {
        self.guarded(|| self.append_unguarded(records, false))
    }

    /// [`Store::append`] for records this node made: also keeps, in the same
    /// atomic batch, the highest stamp among them as the node's last local
    /// stamp ([`Store::last_local_stamp`]), so that a restart never stamps
    /// below it.
    pub fn append_local(&self, records: &[Record]) -> Result<Vec<Record>, StoreError> {
        self.guarded(|| self.append_unguarded(records, true))
    }

    fn append_unguarded(&self, records: &[Record], local: bool) -> Result<Vec<Record>, StoreError> {
        let _span = tracing::debug_span!("store.append", offered = records.len()).entered();
        let (trees, fresh, written) = {
            let mut state = self.write_state()?;
            let trees = self.trees()?;
            let mut frontier = state.frontier.clone();
            let mut digest = state.digest;
            let mut per_origin = state.per_origin.clone();
            let mut groups: BTreeMap<[u8; 16], Vec<Pending>> = BTreeMap::new();
            let mut fresh = Vec::new();
            let mut skipped = Vec::new();
            for record in records {
                if !frontier.insert(record.id) {
                    skipped.push(record.id);
                    continue;
                }
                groups
                    .entry(chunk_key(record.id))
                    .or_default()
                    .push(Pending {
                        seq: record.id.seq,
                        hlc: record.hlc.0,
                        expires_at: record.expires_at,
                        bytes: encode_record(record)?,
                    });
                let fp = record.fingerprint();
                digest.add(&fp);
                per_origin.entry(record.id.origin).or_default().add(&fp);
                fresh.push(record.clone());
            }
            if fresh.is_empty() {
                drop(state);
                // Another call may have written these and still be flushing:
                // answer only once they are on disk, as for new records.
                if !self.all_durable(&skipped)? {
                    self.flush()?;
                }
                return Ok(fresh);
            }
            let mut writes = Writes::default();
            for (key, new) in &groups {
                let old_value = self.read_chunk(key)?;
                let old = old_value
                    .as_ref()
                    .map(|v| ChunkRef::parse(key, v))
                    .transpose()?;
                let mut entries: Vec<Entry<'_>> = old.iter().flat_map(|c| c.entries()).collect();
                entries.extend(new.iter().map(|p| Entry {
                    seq: p.seq,
                    hlc: p.hlc,
                    expires_at: p.expires_at,
                    bytes: &p.bytes,
                }));
                // Stable: should an uncovered seq already be on disk, the stored
                // record wins, as it would for a covered one.
                entries.sort_by_key(|e| e.seq);
                entries.dedup_by_key(|e| e.seq);
                let new = chunk::encode(&entries);
                writes.put_chunk(key, old.as_ref().and_then(ChunkRef::bounds), Some(new));
            }
            writes
                .meta
                .insert(KEY_FRONTIER, encode_frontier(&frontier)?);
            writes.meta.insert(KEY_DIGEST, encode_digest(&digest)?);
            writes
                .meta
                .insert(KEY_ORIGIN_DIGESTS, encode_origin_digests(&per_origin)?);
            let stamp = fresh.iter().map(|r| r.hlc).max().filter(|_| local);
            let last = stamp.map(|s| s.max(self.last_local_stamp().unwrap_or_default()));
            if let Some(last) = last {
                writes.meta.insert(KEY_LAST_STAMP, &last.0.to_be_bytes());
            }
            self.commit(&trees, &writes)?;
            state.frontier = frontier;
            state.digest = digest;
            state.per_origin = per_origin;
            if let Some(last) = last {
                self.inner.last_stamp.store(last.0, Ordering::Relaxed);
            }
            self.set_live(digest.count());
            tracing::debug!(new = fresh.len(), chunks = groups.len(), "records written");
            (trees, fresh, state.frontier.clone())
        };
        self.flush_then_publish(&trees, &written)?;
        Ok(fresh)
    }

    /// Stores records again whose ids are covered but whose data this store
    /// does not hold (lost, or dropped by a wrong clock before), and returns
    /// the ones it stored. Records not covered, or already held, are skipped:
    /// [`Store::append`] is for new records. The frontier does not change.
    /// One atomic batch, flushed before this returns.
    pub fn restore(&self, records: &[Record]) -> Result<Vec<Record>, StoreError> {
        self.guarded(|| self.restore_unguarded(records))
    }

    fn restore_unguarded(&self, records: &[Record]) -> Result<Vec<Record>, StoreError> {
        let _span = tracing::debug_span!("store.restore", offered = records.len()).entered();
        let (trees, restored, written) = {
            let mut state = self.write_state()?;
            let trees = self.trees()?;
            let mut digest = state.digest;
            let mut per_origin = state.per_origin.clone();
            let mut groups: BTreeMap<[u8; 16], Vec<&Record>> = BTreeMap::new();
            for record in records.iter().filter(|r| state.frontier.contains(r.id)) {
                groups.entry(chunk_key(record.id)).or_default().push(record);
            }
            let mut writes = Writes::default();
            let mut restored = Vec::new();
            for (key, offered) in &groups {
                let old_value = self.read_chunk(key)?;
                let old = old_value
                    .as_ref()
                    .map(|v| ChunkRef::parse(key, v))
                    .transpose()?;
                let mut taken: Vec<(&Record, Vec<u8>)> = Vec::new();
                for record in offered {
                    let held = old
                        .as_ref()
                        .is_some_and(|c| c.find(record.id.seq).is_some());
                    let dup = taken.iter().any(|(r, _)| r.id == record.id);
                    if !held && !dup {
                        taken.push((record, encode_record(record)?));
                    }
                }
                if taken.is_empty() {
                    continue;
                }
                let mut entries: Vec<Entry<'_>> = old.iter().flat_map(|c| c.entries()).collect();
                entries.extend(taken.iter().map(|(r, bytes)| Entry {
                    seq: r.id.seq,
                    hlc: r.hlc.0,
                    expires_at: r.expires_at,
                    bytes,
                }));
                entries.sort_by_key(|e| e.seq);
                let new = chunk::encode(&entries);
                writes.put_chunk(key, old.as_ref().and_then(ChunkRef::bounds), Some(new));
                for (record, _) in taken {
                    let fp = record.fingerprint();
                    digest.add(&fp);
                    per_origin.entry(record.id.origin).or_default().add(&fp);
                    restored.push(record.clone());
                }
            }
            let lost = self.inner.lost_records.load(Ordering::Relaxed);
            let lost_now = lost.saturating_sub(restored.len() as u64);
            if !restored.is_empty() {
                writes.meta.insert(KEY_DIGEST, encode_digest(&digest)?);
                if lost_now != lost {
                    writes
                        .meta
                        .insert(KEY_LOST_RECORDS, &lost_now.to_be_bytes());
                }
                writes
                    .meta
                    .insert(KEY_ORIGIN_DIGESTS, encode_origin_digests(&per_origin)?);
                self.commit(&trees, &writes)?;
                state.digest = digest;
                state.per_origin = per_origin;
                self.inner.lost_records.store(lost_now, Ordering::Relaxed);
                self.set_live(digest.count());
            }
            (trees, restored, state.frontier.clone())
        };
        self.flush_then_publish(&trees, &written)?;
        if !restored.is_empty() {
            tracing::info!(restored = restored.len(), "records restored from peers");
        }
        Ok(restored)
    }

    /// Covers ids without storing data: a peer pruned them, or they arrived
    /// already expired. Covered ids are never stored afterwards. Flushes.
    pub fn cover(&self, ids: &[RecordId]) -> Result<(), StoreError> {
        self.cover_with(|frontier| {
            let mut changed = false;
            for id in ids {
                changed |= frontier.insert(*id);
            }
            changed
        })
    }

    /// Covers everything `other` covers, as [`Store::cover`] does for single ids.
    pub fn cover_frontier(&self, other: &Frontier) -> Result<(), StoreError> {
        self.cover_with(|frontier| {
            let before = frontier.count();
            frontier.union_with(other);
            frontier.count() != before
        })
    }

    fn cover_with(&self, add: impl FnOnce(&mut Frontier) -> bool) -> Result<(), StoreError> {
        self.guarded(|| self.cover_unguarded(add))
    }

    fn cover_unguarded(&self, add: impl FnOnce(&mut Frontier) -> bool) -> Result<(), StoreError> {
        let (trees, written) = {
            let mut state = self.write_state()?;
            let trees = self.trees()?;
            let mut frontier = state.frontier.clone();
            if add(&mut frontier) {
                let mut writes = Writes::default();
                writes
                    .meta
                    .insert(KEY_FRONTIER, encode_frontier(&frontier)?);
                self.commit(&trees, &writes)?;
                state.frontier = frontier;
            }
            (trees, state.frontier.clone())
        };
        self.flush_then_publish(&trees, &written)
    }

    /// Garbage collection: deletes the data of these records from every tree but
    /// keeps their ids covered, so they are never stored or shipped again. Ids not
    /// stored here are covered too. One atomic batch, flushed. Returns how many
    /// stored records were removed.
    pub fn prune(&self, ids: &[RecordId]) -> Result<usize, StoreError> {
        self.guarded(|| self.prune_unguarded(ids))
    }

    fn prune_unguarded(&self, ids: &[RecordId]) -> Result<usize, StoreError> {
        let _span = tracing::debug_span!("store.prune", asked = ids.len()).entered();
        let mut groups: BTreeMap<[u8; 16], BTreeSet<u64>> = BTreeMap::new();
        for id in ids {
            groups.entry(chunk_key(*id)).or_default().insert(id.seq);
        }
        let (trees, removed, written) = {
            let mut state = self.write_state()?;
            let trees = self.trees()?;
            let mut frontier = state.frontier.clone();
            let mut digest = state.digest;
            let mut per_origin = state.per_origin.clone();
            let mut writes = Writes::default();
            let mut removed = 0usize;
            let mut covered_more = false;
            for id in ids {
                covered_more |= frontier.insert(*id);
            }
            for (key, seqs) in &groups {
                let Some(value) = self.read_chunk(key)? else {
                    continue;
                };
                let chunk = ChunkRef::parse(key, &value)?;
                let mut keep = Vec::with_capacity(chunk.slots().len());
                let mut gone = 0usize;
                for (slot, entry) in chunk.slots().iter().zip(chunk.entries()) {
                    if seqs.contains(&slot.seq) {
                        let record = decode_record(chunk.id(slot), entry.bytes)?;
                        writes
                            .pruned_log
                            .insert(&crate::checkpoint::pruned_log_key(record.id), entry.bytes);
                        let fp = record.fingerprint();
                        digest.remove(&fp);
                        if let Some(d) = per_origin.get_mut(&record.id.origin) {
                            d.remove(&fp);
                        }
                        gone += 1;
                    } else {
                        keep.push(entry);
                    }
                }
                if gone == 0 {
                    continue;
                }
                removed += gone;
                let new = (!keep.is_empty()).then(|| chunk::encode(&keep));
                writes.put_chunk(key, chunk.bounds(), new);
            }
            if removed > 0 || covered_more {
                writes
                    .meta
                    .insert(KEY_FRONTIER, encode_frontier(&frontier)?);
                writes.meta.insert(KEY_DIGEST, encode_digest(&digest)?);
                writes
                    .meta
                    .insert(KEY_ORIGIN_DIGESTS, encode_origin_digests(&per_origin)?);
                self.commit(&trees, &writes)?;
                state.frontier = frontier;
                state.digest = digest;
                state.per_origin = per_origin;
                self.set_live(digest.count());
            }
            (trees, removed, state.frontier.clone())
        };
        self.flush_then_publish(&trees, &written)?;
        metrics::counter!("veto_gc_removed_total").increment(removed as u64);
        tracing::debug!(removed, "records pruned");
        Ok(removed)
    }

    /// Runs a write, halting the store if sled failed anywhere in it: after an
    /// I/O error (its own, or its background flusher's) sled refuses every
    /// operation, and what it holds on disk is known only after a reopen.
    fn guarded<T>(&self, write: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.writable()?;
        self.check_space()?;
        write().map_err(|e| match e {
            StoreError::Storage(inner) => {
                self.halt(format!("a failed write ({inner})"));
                StoreError::Storage(inner)
            }
            other => other,
        })
    }

    /// Applies `writes` as one transaction across the record trees and the meta
    /// tree. sled seals one transaction's log entries together, which is what
    /// makes a crash leave all of them or none.
    fn commit(&self, trees: &Arc<Trees>, writes: &Writes) -> Result<(), StoreError> {
        let i = trees;
        (&i.records, &i.by_hlc, &i.by_expiry, &i.meta, &i.pruned_log)
            .transaction(|(records, by_hlc, by_expiry, meta, pruned_log)| {
                records.apply_batch(&writes.records)?;
                by_hlc.apply_batch(&writes.by_hlc)?;
                by_expiry.apply_batch(&writes.by_expiry)?;
                meta.apply_batch(&writes.meta)?;
                pruned_log.apply_batch(&writes.pruned_log)?;
                Ok::<(), ConflictableTransactionError<Infallible>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(never) => match never {},
                TransactionError::Storage(e) => {
                    // sled may have logged part of the transaction; only a
                    // restart's recovery knows what of it is durable.
                    self.halt(format!("a failed commit ({e})"));
                    StoreError::Storage(e)
                }
            })
    }
}
