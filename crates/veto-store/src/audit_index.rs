//! The audit trail filtered by key, origin or scope without a scan of every
//! record: the node's lookup index knows which records hold a key or belong
//! to a scope, and the records tree keeps each origin's records in seq order.
//!
//! One fact makes the merge exact: an origin is one process lifetime of one
//! node, whose writer stamps its records in seq order, so each origin's
//! records newest first are its seqs highest first. The records of every
//! origin are merged by stamp, newest first, until the page is full. Should a
//! stamp ever run against its origin's seq order, the answer falls back to
//! [`Store::audit`], which orders by stamp alone.

use std::collections::BinaryHeap;

use veto_core::{AuditQuery, IndexMap, LookupIndex, NodeId, Record, RecordId, ScopeKind};

use crate::chunk::{chunk_key_of, ChunkRef};
use crate::codec::decode_record;
use crate::store::touch;
use crate::{Store, StoreError};

/// A scope whose map holds more than this share of the records is dense
/// enough that a newest-first scan fills a page sooner than reading the map.
const DENSE_PERCENT: usize = 1;

/// What the audit trail asks of the node's lookup index. Each call stands
/// alone, so an implementation can take its lock per call and never hold it
/// across the store's reads.
pub trait AuditIndex {
    /// [`LookupIndex::ids_for_key`].
    fn ids_for_key(&self, key: &str) -> Vec<RecordId>;
    /// [`LookupIndex::qualifies`].
    fn qualifies(&self, iss: &str) -> bool;
    /// [`LookupIndex::map_len`].
    fn map_len(&self, map: IndexMap) -> usize;
    /// [`LookupIndex::ids_by_origin`].
    fn ids_by_origin(&self, map: IndexMap) -> Vec<Vec<RecordId>>;
    /// The ids of the stored `peer` records, which the lookup index does not
    /// hold.
    fn peer_records(&self) -> Vec<RecordId>;
}

/// A lookup index and the ids of the `peer` records beside it.
pub struct IndexWithPeers<'a> {
    /// The lookup index over the store's records.
    pub index: &'a LookupIndex,
    /// The ids of the stored `peer` records.
    pub peers: &'a [RecordId],
}

impl AuditIndex for IndexWithPeers<'_> {
    fn ids_for_key(&self, key: &str) -> Vec<RecordId> {
        self.index.ids_for_key(key)
    }
    fn qualifies(&self, iss: &str) -> bool {
        self.index.qualifies(iss)
    }
    fn map_len(&self, map: IndexMap) -> usize {
        self.index.map_len(map)
    }
    fn ids_by_origin(&self, map: IndexMap) -> Vec<Vec<RecordId>> {
        self.index.ids_by_origin(map)
    }
    fn peer_records(&self) -> Vec<RecordId> {
        self.peers.to_vec()
    }
}

/// One origin's records, newest first.
type Newest<'a> = Box<dyn Iterator<Item = Result<Record, StoreError>> + 'a>;

impl Store {
    /// The audit trail as [`Store::audit`] answers it, records for records
    /// and in the same order, found through `index` (the node's lookup index
    /// over this store) where a filter allows: `key` by its digests, `origin`
    /// by that origin's records from the newest, a sparse `scope` by its map.
    pub fn audit_indexed(
        &self,
        query: &AuditQuery,
        index: &dyn AuditIndex,
    ) -> Result<Vec<Record>, StoreError> {
        let limit = query.page_limit();
        let lists: Vec<Newest<'_>> = if let Some(key) = &query.key {
            if index.qualifies(key) {
                // Every token of an issuer holds that key: its records are
                // listed nowhere but in the store.
                match query.origin {
                    Some(origin) => vec![self.newest_of(origin)],
                    None => return self.audit(query),
                }
            } else {
                let mut ids = index.ids_for_key(key);
                ids.extend(index.peer_records());
                self.by_origin(ids)
            }
        } else if let Some(origin) = query.origin {
            vec![self.newest_of(origin)]
        } else if let Some(scope) = query.scope {
            let map = match scope {
                ScopeKind::Peer => None,
                ScopeKind::Token => Some(IndexMap::Tokens),
                ScopeKind::Session => Some(IndexMap::Sessions),
                ScopeKind::Key => Some(IndexMap::Keys),
                ScopeKind::Subject => Some(IndexMap::Subjects),
                ScopeKind::Client => Some(IndexMap::Clients),
                ScopeKind::Issuer => Some(IndexMap::Issuers),
            };
            match map {
                None => self.by_origin(index.peer_records()),
                Some(map)
                    if index.map_len(map) * 100 > self.live_count() as usize * DENSE_PERCENT =>
                {
                    return self.audit(query)
                }
                Some(map) => index
                    .ids_by_origin(map)
                    .into_iter()
                    .map(|ids| self.fetch(ids))
                    .collect(),
            }
        } else {
            return self.audit(query);
        };
        match self.merge(lists, query, limit)? {
            Some(records) => Ok(records),
            None => self.audit(query),
        }
    }

    /// Ids grouped by origin, each group highest seq first, read lazily.
    fn by_origin(&self, mut ids: Vec<RecordId>) -> Vec<Newest<'_>> {
        ids.sort_unstable_by(|a, b| a.origin.cmp(&b.origin).then(b.seq.cmp(&a.seq)));
        ids.dedup();
        let mut lists = Vec::new();
        for group in ids.chunk_by(|a, b| a.origin == b.origin) {
            lists.push(self.fetch(group.to_vec()));
        }
        lists
    }

    /// The stored records of `ids`, in their order; ids no longer stored are
    /// skipped (pruned since the index was read).
    fn fetch(&self, ids: Vec<RecordId>) -> Newest<'_> {
        Box::new(
            ids.into_iter()
                .filter_map(move |id| self.get(id).transpose()),
        )
    }

    /// Every stored record of `origin`, highest seq first.
    fn newest_of(&self, origin: NodeId) -> Newest<'_> {
        let trees = match self.trees() {
            Ok(t) => t,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let lo = chunk_key_of(origin, 0);
        let hi = chunk_key_of(origin, u64::MAX);
        let chunks = trees.records.range(lo..=hi).rev();
        let trees = trees.clone();
        Box::new(chunks.flat_map(move |entry| {
            let records = (|| -> Result<Vec<Record>, StoreError> {
                let (key, value) = entry?;
                touch(&trees.records, &key)?;
                let chunk = ChunkRef::parse(&key, &value)?;
                let mut out = Vec::with_capacity(chunk.slots().len());
                for slot in chunk.slots().iter().rev() {
                    out.push(decode_record(chunk.id(slot), chunk.bytes(slot))?);
                }
                Ok(out)
            })();
            match records {
                Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        }))
    }

    /// Merges per-origin lists, newest first, into one page of matches.
    /// `None`: a list was not newest first (see the module's doc).
    fn merge(
        &self,
        mut lists: Vec<Newest<'_>>,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Option<Vec<Record>>, StoreError> {
        // Each list's head, and a heap of (stamp, id, list) in the store's
        // audit order: newest stamp first, ties by id.
        let mut heads: Vec<Option<Record>> = Vec::with_capacity(lists.len());
        let mut heap = BinaryHeap::new();
        for (list, records) in lists.iter_mut().enumerate() {
            let head = records.next().transpose()?;
            if let Some(r) = &head {
                heap.push((r.hlc, r.id, list));
            }
            heads.push(head);
        }
        let mut out = Vec::new();
        while let Some((_, _, list)) = heap.pop() {
            let Some(record) = heads[list].take() else {
                continue;
            };
            // Older than the window: so is the rest of its list, dropped.
            if query.since.is_some_and(|since| record.revoked_at() < since) {
                continue;
            }
            if let Some(next) = lists[list].next().transpose()? {
                if (next.hlc, next.id) > (record.hlc, record.id) {
                    return Ok(None);
                }
                heap.push((next.hlc, next.id, list));
                heads[list] = Some(next);
            }
            if query.matches(&record) {
                out.push(record);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(Some(out))
    }
}
