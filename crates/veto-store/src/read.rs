//! Reads: single records, ranges of one origin's log, the full scans used to
//! rebuild in-memory state, the audit trail and the garbage-collection queue.

use std::collections::{BTreeMap, BinaryHeap};
use std::ops::RangeInclusive;

use veto_core::{AuditQuery, NodeId, Record, RecordId, SetDigest, Target};

use crate::chunk::{chunk_key, chunk_key_of, ChunkRef, Slot, CHUNK_BITS};
use crate::codec::{corrupt, decode_record, decode_target, split_ordered_key};
use crate::error::StoreError;
use crate::store::{touch, Store, TREE_BY_EXPIRY, TREE_BY_HLC};

/// The lowest HLC stamp whose whole second is `secs`, or `None` when no stamp
/// can be that late (stamps hold 32 bits of seconds).
fn first_stamp_of(secs: u64) -> Option<u64> {
    (secs <= u64::from(u32::MAX)).then_some(secs << 32)
}

/// A record in the audit merge, ordered newest first by (stamp, id).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    hlc: u64,
    id: RecordId,
    chunk: usize,
    start: usize,
    end: usize,
}

impl Store {
    /// The stored record with this id, if it is present (not pruned, not absent).
    pub fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        let key = chunk_key(id);
        let Some(value) = self.read_chunk(&key)? else {
            return Ok(None);
        };
        let chunk = ChunkRef::parse(&key, &value)?;
        chunk
            .find(id.seq)
            .map(|slot| decode_record(id, chunk.bytes(slot)))
            .transpose()
    }

    /// Stored records of `origin` with a seq in `seqs`, ascending, at most `max`.
    /// Pruned and absent seqs are simply not in the answer.
    pub fn read_range(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        max: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        self.for_each_slot_in(origin, seqs, |chunk, slot| {
            out.push(decode_record(chunk.id(slot), chunk.bytes(slot))?);
            Ok(out.len() < max)
        })?;
        Ok(out)
    }

    /// Per origin, the digest of the live records held of it, in origin order.
    /// Kept up to date by every write, so this costs no disk read.
    pub fn origin_digests(&self) -> Result<Vec<(NodeId, SetDigest)>, StoreError> {
        Ok(self
            .state()?
            .per_origin
            .iter()
            .filter(|(_, d)| d.count() > 0)
            .map(|(o, d)| (*o, *d))
            .collect())
    }

    /// The seqs of `origin` within `seqs` this store holds with data, ascending,
    /// calling `f` with each until it returns false. Reads only the chunks'
    /// slot tables, never a record.
    pub fn held_seqs(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        mut f: impl FnMut(u64) -> bool,
    ) -> Result<(), StoreError> {
        self.for_each_slot_in(origin, seqs, |_, slot| Ok(f(slot.seq)))
    }

    /// Calls `f` with the id and target of every stored record of `origin`
    /// with a seq in `seqs`, in seq order.
    pub(crate) fn for_each_target_in(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        mut f: impl FnMut(RecordId, Target),
    ) -> Result<(), StoreError> {
        self.for_each_slot_in(origin, seqs, |chunk, slot| {
            let id = chunk.id(slot);
            f(id, decode_target(id, chunk.bytes(slot))?);
            Ok(true)
        })
    }

    /// Calls `f` with every stored slot of `origin` with a seq in `seqs`, in
    /// seq order, until it returns `Ok(false)` or an error.
    fn for_each_slot_in(
        &self,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        mut f: impl FnMut(&ChunkRef<'_>, &Slot) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let lo = chunk_key_of(origin, seqs.start() >> CHUNK_BITS);
        let hi = chunk_key_of(origin, seqs.end() >> CHUNK_BITS);
        let trees = self.trees()?;
        for entry in trees.records.range(lo..=hi) {
            let (key, value) = entry?;
            touch(&trees.records, &key)?;
            let chunk = ChunkRef::parse(&key, &value)?;
            for slot in chunk.slots().iter().filter(|s| seqs.contains(&s.seq)) {
                if !f(&chunk, slot)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Calls `f` with every stored record, ordered by id. Stops at the first
    /// entry that cannot be read. [`Store::for_each_target`] is faster when only
    /// the lookup index is being rebuilt.
    pub fn for_each_record(&self, mut f: impl FnMut(Record)) -> Result<(), StoreError> {
        let trees = self.trees()?;
        for entry in trees.records.iter() {
            let (key, value) = entry?;
            touch(&trees.records, &key)?;
            let chunk = ChunkRef::parse(&key, &value)?;
            for slot in chunk.slots() {
                f(decode_record(chunk.id(slot), chunk.bytes(slot))?);
            }
        }
        Ok(())
    }

    /// Calls `f` with the id, HLC stamp, expiry and target of every stored
    /// record, ordered by id: all the lookup index needs, read without decoding
    /// the audit notes. This is the restart path.
    pub fn for_each_target(&self, mut f: impl FnMut(RecordId, Target)) -> Result<(), StoreError> {
        let trees = self.trees()?;
        for entry in trees.records.iter() {
            let (key, value) = entry?;
            touch(&trees.records, &key)?;
            let chunk = ChunkRef::parse(&key, &value)?;
            for slot in chunk.slots() {
                let id = chunk.id(slot);
                f(id, decode_target(id, chunk.bytes(slot))?);
            }
        }
        Ok(())
    }

    /// The audit trail: stored records passing `query`'s filters, newest first by
    /// HLC stamp (ties by id, highest first). A `limit` of 0 means the default
    /// page size; larger limits are capped at [`MAX_AUDIT_LIMIT`].
    ///
    /// The time filters bound the scan; the other filters are checked record by
    /// record, so a selective filter over a long history reads every record in
    /// the time window.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<Record>, StoreError> {
        let limit = query.page_limit();
        let lo = match query.since.map(first_stamp_of) {
            None => 0,
            Some(Some(stamp)) => stamp,
            Some(None) => return Ok(Vec::new()),
        };
        let hi = query.until.and_then(first_stamp_of);
        // Chunks are listed by their newest stamp. Merge them newest first: a
        // candidate is final once it is newer than anything the next chunk can
        // hold. An 8-byte bound sorts before every 24-byte key it prefixes.
        let mut chunks = self.trees()?.by_hlc.range(lo.to_be_bytes()..).rev();
        let mut pull = || -> Result<Option<(u64, [u8; 16], u64)>, StoreError> {
            let Some(entry) = chunks.next() else {
                return Ok(None);
            };
            let (key, value) = entry?;
            let (max, chunk) = split_ordered_key(TREE_BY_HLC, &key)?;
            let min = <[u8; 8]>::try_from(value.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt(TREE_BY_HLC, &key, "value is not 8 bytes".into()))?;
            Ok(Some((max, chunk, min)))
        };
        let mut next = pull()?;
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::new();
        // Chunks with candidates still in the heap, and how many; a chunk is
        // released once its last candidate is popped, so a selective filter
        // over a long history holds only the chunks that overlap in time.
        let mut loaded: Vec<Option<(sled::IVec, usize)>> = Vec::new();
        let mut out = Vec::new();
        loop {
            let bound = next.map(|(max, _, _)| max);
            while let Some(top) = heap.peek() {
                if bound.is_some_and(|b| b >= top.hlc) {
                    break;
                }
                let Some(c) = heap.pop() else {
                    break;
                };
                let Some((value, pending)) = loaded.get_mut(c.chunk).and_then(Option::as_mut)
                else {
                    continue;
                };
                let record = decode_record(c.id, &value[c.start..c.end])?;
                *pending -= 1;
                if *pending == 0 {
                    loaded[c.chunk] = None;
                }
                if query.matches(&record) {
                    out.push(record);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            let Some((_, key, min)) = next.take() else {
                return Ok(out);
            };
            next = pull()?;
            if hi.is_some_and(|hi| min >= hi) {
                continue;
            }
            let Some(value) = self.chunk_of_index(TREE_BY_HLC, &key)? else {
                continue;
            };
            let chunk = ChunkRef::parse(&key, &value)?;
            let mut pending = 0;
            for slot in chunk.slots() {
                if slot.hlc >= lo && hi.is_none_or(|hi| slot.hlc < hi) {
                    let bytes = ChunkRef::range(slot);
                    heap.push(Candidate {
                        hlc: slot.hlc,
                        id: chunk.id(slot),
                        chunk: loaded.len(),
                        start: bytes.start,
                        end: bytes.end,
                    });
                    pending += 1;
                }
            }
            loaded.push((pending > 0).then(|| (value.clone(), pending)));
        }
    }

    /// Stored records with `expires_at + grace_secs < now_unix`, at most `max`:
    /// the next batch for [`Store::prune`]. Chunks holding the earliest expiries
    /// are read first, so repeated calls drain the oldest records first.
    pub fn expired(
        &self,
        now_unix: u64,
        grace_secs: u64,
        max: usize,
    ) -> Result<Vec<Record>, StoreError> {
        // expires_at + grace < now  <=>  expires_at < now - grace (and nothing
        // qualifies when now <= grace).
        let mut out = Vec::new();
        let Some(cutoff) = now_unix.checked_sub(grace_secs) else {
            return Ok(out);
        };
        if max == 0 {
            return Ok(out);
        }
        for entry in self.trees()?.by_expiry.range(..cutoff.to_be_bytes()) {
            let (key, _) = entry?;
            let (_, key) = split_ordered_key(TREE_BY_EXPIRY, &key)?;
            let Some(value) = self.chunk_of_index(TREE_BY_EXPIRY, &key)? else {
                continue;
            };
            let chunk = ChunkRef::parse(&key, &value)?;
            for slot in chunk.slots().iter().filter(|s| s.expires_at < cutoff) {
                out.push(decode_record(chunk.id(slot), chunk.bytes(slot))?);
                if out.len() >= max {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// The chunk a secondary-index entry points at. Entries move atomically with
    /// their chunk, so a dangling one means damage; it is logged and skipped
    /// rather than failing every later audit or GC pass.
    fn chunk_of_index(
        &self,
        tree: &'static str,
        key: &[u8; 16],
    ) -> Result<Option<sled::IVec>, StoreError> {
        let value = self.read_chunk(key)?;
        if value.is_none() {
            tracing::warn!(
                tree,
                chunk = %crate::codec::show_key(key),
                "index entry without a chunk; skipping it"
            );
        }
        Ok(value)
    }
}

/// The per-origin digests of every record in `records`, computed by a full
/// scan: for a data directory written before they were kept.
pub(crate) fn origin_digests(
    records: &sled::Tree,
) -> Result<BTreeMap<NodeId, SetDigest>, StoreError> {
    let mut out: BTreeMap<NodeId, SetDigest> = BTreeMap::new();
    for entry in records.iter() {
        let (key, value) = entry?;
        let chunk = ChunkRef::parse(&key, &value)?;
        for slot in chunk.slots() {
            let record = decode_record(chunk.id(slot), chunk.bytes(slot))?;
            out.entry(record.id.origin)
                .or_default()
                .add(&record.fingerprint());
        }
    }
    Ok(out)
}
