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
