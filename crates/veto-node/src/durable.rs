//! The write path's order, the same over sled and in the simulator: a
//! record is stored before it is acknowledged, indexed or advertised, and
//! garbage collection drops a record from the store before the index.

use veto_core::{Frontier, Record};

use crate::storage::Storage;

/// How many expired records one collection step takes at a time, so that
/// lookups are never held up by a long prune.
pub const COLLECT_BATCH: usize = 10_000;

/// Why this node's own write was refused.
#[derive(Debug, thiserror::Error)]
pub enum LocalWriteError<E: std::error::Error + 'static> {
    /// The store failed; nothing of the write is acknowledged.
    #[error(transparent)]
    Storage(E),
    /// Ids of the batch were already covered: the writer reused seqs, and
    /// acknowledging would name a record that is not the one stored.
    #[error("{taken} of {asked} new ids were already covered")]
    IdsTaken {
        /// How many ids were already covered.
        taken: usize,
        /// How many records the batch had.
        asked: usize,
    },
}

/// Stores this node's own `records` (numbered and stamped by its
/// [`Writer`](crate::Writer)). When it returns `Ok`, every record is durable
/// and may be acknowledged, indexed and replicated.
pub fn store_local<S: Storage>(
    storage: &mut S,
    records: &[Record],
) -> Result<(), LocalWriteError<S::Error>> {
    let stored = storage
        .append_local(records)
        .map_err(LocalWriteError::Storage)?;
    if stored.len() != records.len() {
        return Err(LocalWriteError::IdsTaken {
            taken: records.len() - stored.len(),
            asked: records.len(),
        });
    }
    Ok(())
}

/// Carries out the engine's `Persist`: new records, then ids to cover
/// without data, then records to hold again under ids covered without data.
/// Returns the records that became durable here, for the index; only after
/// it returns `Ok` may the engine count them as held.
pub fn store_from_peer<S: Storage>(
    storage: &mut S,
    records: &[Record],
    cover: &Frontier,
    restore: &[Record],
) -> Result<Vec<Record>, S::Error> {
    let mut stored = if records.is_empty() {
        Vec::new()
    } else {
        storage.append(records)?
    };
    if cover.count() > 0 {
        storage.cover(cover)?;
    }
    if !restore.is_empty() {
        stored.extend(storage.restore(restore)?);
    }
    Ok(stored)
}

/// One garbage-collection pass at `now_secs` (the caller checked first that
/// this node's clock may decide: [`may_collect`](crate::may_collect)):
/// prunes every record past `expires_at + grace_secs`, a batch at a time,
/// and hands each pruned batch to `forget` to drop from the index. Returns
/// how many it pruned.
pub fn collect_expired<S: Storage>(
    storage: &mut S,
    now_secs: u64,
    grace_secs: u64,
    mut forget: impl FnMut(&[Record]),
) -> Result<usize, S::Error> {
    let mut total = 0;
    loop {
        let expired = storage.expired(now_secs, grace_secs, COLLECT_BATCH)?;
        if expired.is_empty() {
            return Ok(total);
        }
        let ids: Vec<_> = expired.iter().map(|r| r.id).collect();
        storage.prune(&ids)?;
        forget(&expired);
        total += expired.len();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use veto_core::{Hlc, NodeId, RecordId, Revocation, Target};

    use super::*;

    /// A store in memory, with a log of the calls made, in order.
    #[derive(Default)]
    struct Memory {
        records: BTreeMap<RecordId, Record>,
        covered: Frontier,
        calls: Vec<&'static str>,
        fail: bool,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("disk failed")]
    struct DiskFailed;

    impl Memory {
        fn put(&mut self, records: &[Record]) -> Vec<Record> {
            records
                .iter()
                .filter(|r| self.covered.insert(r.id))
                .inspect(|r| {
                    self.records.insert(r.id, (*r).clone());
                })
                .cloned()
                .collect()
        }
    }

    impl Storage for Memory {
        type Error = DiskFailed;

        fn append(&mut self, records: &[Record]) -> Result<Vec<Record>, DiskFailed> {
            self.calls.push("append");
            if self.fail {
                return Err(DiskFailed);
            }
            Ok(self.put(records))
        }

        fn append_local(&mut self, records: &[Record]) -> Result<Vec<Record>, DiskFailed> {
            self.calls.push("append_local");
            if self.fail {
                return Err(DiskFailed);
            }
            Ok(self.put(records))
        }

        fn cover(&mut self, frontier: &Frontier) -> Result<(), DiskFailed> {
            self.calls.push("cover");
            self.covered.union_with(frontier);
            Ok(())
        }

        fn restore(&mut self, records: &[Record]) -> Result<Vec<Record>, DiskFailed> {
            self.calls.push("restore");
            let back: Vec<Record> = records
                .iter()
                .filter(|r| self.covered.contains(r.id) && !self.records.contains_key(&r.id))
                .cloned()
                .collect();
            for r in &back {
                self.records.insert(r.id, r.clone());
            }
            Ok(back)
        }

        fn expired(&self, now: u64, grace: u64, limit: usize) -> Result<Vec<Record>, DiskFailed> {
            Ok(self
                .records
                .values()
                .filter(|r| r.expires_at.saturating_add(grace) < now)
                .take(limit)
                .cloned()
                .collect())
        }

        fn prune(&mut self, ids: &[RecordId]) -> Result<usize, DiskFailed> {
            self.calls.push("prune");
            Ok(ids
                .iter()
                .filter(|id| self.records.remove(id).is_some())
                .count())
        }
    }

    fn record(origin: u64, seq: u64, expires_at: u64) -> Record {
        Revocation {
            target: Target::Token {
                iss: None,
                jti: format!("{origin}-{seq}"),
            },
            expires_at,
            reason: String::new(),
            actor: "test".into(),
        }
        .into_record(
            RecordId {
                origin: NodeId::new(origin),
                seq,
            },
            Hlc(seq),
        )
    }

    #[test]
    fn a_peer_write_stores_covers_then_restores_and_returns_what_is_new() {
        let mut store = Memory::default();
        store.put(&[record(1, 1, 10)]);
        // Seq 2 of origin 1 was covered without data; it comes back.
        let mut dataless = Frontier::new();
        dataless.insert(RecordId {
            origin: NodeId::new(1),
            seq: 2,
        });
        store.covered.union_with(&dataless);
        let mut cover = Frontier::new();
        cover.insert(RecordId {
            origin: NodeId::new(3),
            seq: 1,
        });
        let new = [record(1, 1, 10), record(2, 1, 10)];
        let stored =
            store_from_peer(&mut store, &new, &cover, &[record(1, 2, 10)]).expect("stored");
        let ids: Vec<_> = stored.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids.len(), 2, "{ids:?}: the covered seq 1 is not new");
        assert_eq!(store.calls, ["append", "cover", "restore"]);
        assert!(store.covered.contains(RecordId {
            origin: NodeId::new(3),
            seq: 1
        }));
    }

    #[test]
    fn a_failed_peer_write_stops_before_anything_else() {
        let mut store = Memory {
            fail: true,
            ..Memory::default()
        };
        let mut cover = Frontier::new();
        cover.insert(record(3, 1, 10).id);
        assert!(store_from_peer(&mut store, &[record(1, 1, 10)], &cover, &[]).is_err());
        assert_eq!(store.calls, ["append"]);
        assert_eq!(store.covered.count(), 0);
    }

    #[test]
    fn a_local_write_with_a_reused_id_is_refused() {
        let mut store = Memory::default();
        store_local(&mut store, &[record(1, 1, 10)]).expect("first write");
        let again = store_local(&mut store, &[record(1, 1, 10), record(1, 2, 10)]);
        assert!(matches!(
            again,
            Err(LocalWriteError::IdsTaken { taken: 1, asked: 2 })
        ));
        let mut broken = Memory {
            fail: true,
            ..Memory::default()
        };
        assert!(matches!(
            store_local(&mut broken, &[record(1, 1, 10)]),
            Err(LocalWriteError::Storage(DiskFailed))
        ));
    }

    #[test]
    fn collection_prunes_past_grace_in_batches_and_tells_the_index() {
        let mut store = Memory::default();
        let many: Vec<Record> = (1..=COLLECT_BATCH as u64 + 5)
            .map(|seq| record(1, seq, 100))
            .collect();
        store.put(&many);
        store.put(&[record(2, 1, 1_000)]);
        let mut forgotten = Vec::new();
        // 100 + grace 50 is not before 150: nothing yet.
        let none = collect_expired(&mut store, 150, 50, |b| forgotten.push(b.len())).unwrap();
        assert_eq!(none, 0);
        let pruned = collect_expired(&mut store, 151, 50, |b| forgotten.push(b.len())).unwrap();
        assert_eq!(pruned, COLLECT_BATCH + 5);
        assert_eq!(forgotten, [COLLECT_BATCH, 5]);
        assert_eq!(store.records.len(), 1, "the long-lived record stays");
        assert!(
            store.covered.contains(many[0].id),
            "pruned ids stay covered"
        );
    }
}
