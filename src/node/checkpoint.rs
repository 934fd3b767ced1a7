//! Restarting from the index checkpoint (`index.checkpoint`, see veto-store),
//! and writing it in the background.
//!
//! A restart with a checkpoint inserts its keys, adds the records stored since
//! and removes the ones pruned since, then compares the digest it arrives at
//! with the store's. Only an exact match is served from; anything else (no
//! file, a damaged or foreign one, a store restored from a backup under it)
//! falls back to reading every record, so a checkpoint can make a restart
//! faster but never makes an index that misses a revocation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use veto_core::{BulkLoad, Frontier, IndexKey, Record, RecordId, SetDigest};
use veto_node::{Enforcer, RevokedPeers};
use veto_store::CheckpointError;

use super::Node;

/// A checkpoint costs a scan of the store; after one that took `t`, the next
/// waits at least this many times `t`, so that checkpoints take at most about
/// a tenth of one core however large the store.
const DUTY: u32 = 10;

/// At most this many checkpoints in a row are written from the one before
/// (cheap: the file and the change); then one comes from a scan of the
/// store, whose count check covers every record again.
const UPDATES_PER_SCAN: u32 = 10;

/// What the writer knows of the last checkpoint.
#[derive(Default)]
pub(crate) struct CheckpointState {
    /// The store's digest the last checkpoint was taken at.
    digest: Option<SetDigest>,
    /// When the last one ended, and how long it took.
    last: Option<(Instant, Duration)>,
    /// Checkpoints written from the one before since the last scan.
    updates: u32,
}

/// Why the checkpoint was not used.
enum Unused {
    /// There is none.
    Absent,
    /// There is one, but it cannot be used; the reason is logged.
    Refused(String),
}

impl Node {
    /// The index from the checkpoint and what changed since, if that is
    /// exactly the store's set of records; `None` otherwise (the caller then
    /// reads every record).
    pub(super) fn read_memory_from_checkpoint(&self) -> Option<Enforcer> {
        let started = Instant::now();
        match self.try_checkpoint() {
            Ok(enforcer) => {
                tracing::info!(
                    records = enforcer.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "index read from its checkpoint and the changes since"
                );
                metrics::counter!("veto_checkpoint_loads_total", "result" => "used").increment(1);
                Some(enforcer)
            }
            Err(Unused::Absent) => None,
            Err(Unused::Refused(why)) => {
                tracing::warn!(reason = %why, "index checkpoint not used; reading every record");
                metrics::counter!("veto_checkpoint_loads_total", "result" => "refused")
                    .increment(1);
                None
            }
        }
    }

    fn try_checkpoint(&self) -> Result<Enforcer, Unused> {
        let refused = |e: &dyn std::fmt::Display| Unused::Refused(e.to_string());
        // The store's count is the checkpoint's within what changed since.
        let mut load = BulkLoad::new(self.store.live_count() as usize);
        let mut failed = None;
        let read = self.store.read_checkpoint(|id, key| {
            if let Err(e) = load.push(id, key) {
                failed.get_or_insert(e);
            }
        });
        let checkpoint = match read {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Unused::Absent),
            Err(e) => return Err(refused(&e)),
        };
        if let Some(e) = failed {
            return Err(refused(&e));
        }
        let mut enforcer = Enforcer::from_parts(load.finish(), RevokedPeers::default());
        let mut digest = checkpoint.digest;
        // Records without an index key (`peer`) are few: read them. One
        // pruned since is gone, and is in the log below.
        for id in &checkpoint.others {
            if let Some(record) = self.store.get(*id).map_err(|e| refused(&e))? {
                enforcer.enforce(std::slice::from_ref(&record));
            }
        }
        // Pruned since: in the checkpoint if it covered them.
        let mut pruned = Vec::new();
        self.store
            .for_each_pruned_since_checkpoint(|r| {
                if checkpoint.covered.contains(r.id) {
                    digest.remove(&r.fingerprint());
                    pruned.push(r);
                }
            })
            .map_err(|e| refused(&e))?;
        enforcer.forget(&pruned);
        // Stored since: every id the store covers beyond the checkpoint.
        let covered = self.store.covered().map_err(|e| refused(&e))?;
        digest.merge(&self.enforce_stored_since(&mut enforcer, &covered, &checkpoint.covered)?);
        let store_digest = self.store.digest().map_err(|e| refused(&e))?;
        if digest != store_digest {
            return Err(Unused::Refused(format!(
                "it and the changes since come to {} records, not the store's {} \
                 (a data dir restored or changed under it)",
                digest.count(),
                store_digest.count()
            )));
        }
        metrics::gauge!("veto_checkpoint_records")
            .set((checkpoint.keys + checkpoint.others.len() as u64) as f64);
        *self.checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = CheckpointState {
            digest: Some(checkpoint.digest),
            last: None,
            updates: 0,
        };
        Ok(enforcer)
    }

    /// Reads and enforces the records the store covers beyond `checkpoint`,
    /// and returns their digest. After a bulk ingest, millions of records
    /// can be newer than the last checkpoint, and reading them (a decode, a
    /// SHA-256 for the digest check and the index key's hashes, each) is most
    /// of the work: both threads read batches, taken in turn from one list,
    /// and this one also indexes every batch read, by key alone. What hits
    /// on them report is noted after serving began, with every other
    /// record's.
    fn enforce_stored_since(
        &self,
        enforcer: &mut Enforcer,
        covered: &Frontier,
        checkpoint: &Frontier,
    ) -> Result<SetDigest, Unused> {
        let ranges: Vec<_> = covered
            .missing_in(checkpoint)
            .into_iter()
            .flat_map(|(origin, ranges)| {
                ranges
                    .into_iter()
                    .flat_map(move |seqs| batches(seqs).map(move |batch| (origin, batch)))
            })
            .collect();
        let next = AtomicUsize::new(0);
        // The next batch, read and fingerprinted; `None` once none is left.
        let take = || {
            let (origin, seqs) = ranges.get(next.fetch_add(1, Ordering::Relaxed))?.clone();
            let read = self
                .store
                .read_range(origin, seqs, usize::MAX)
                .map(StoredSince::of);
            Some(read.map_err(|e| Unused::Refused(e.to_string())))
        };
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            let helper = scope.spawn(move || {
                while let Some(read) = take() {
                    // The receiver is gone once this thread's side failed.
                    if tx.send(read).is_err() {
                        return;
                    }
                }
            });
            let outcome = index_batches(enforcer, take, rx);
            // After a failure: no more batches for the helper to take.
            next.store(ranges.len(), Ordering::Relaxed);
            if helper.join().is_err() {
                return Err(Unused::Refused(
                    "the reader of the records since panicked".into(),
                ));
            }
            outcome
        })
    }

    /// Writes a new checkpoint if the store changed since the last one and
    /// the last one's cost allows. Never runs beside garbage collection: a
    /// prune during the scan would be missed by the log of prunes.
    pub(crate) fn maybe_write_checkpoint(&self) {
        if !self.ready.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let _maintenance = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(digest) = self.store.digest() else {
            return;
        };
        let update = {
            let state = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
            if state.digest == Some(digest) {
                return;
            }
            if let Some((ended, took)) = state.last {
                if ended.elapsed() < took * DUTY {
                    return;
                }
            }
            // From the last one if there is one, but for every eleventh.
            state.digest.is_some() && state.updates < UPDATES_PER_SCAN
        };
        let started = Instant::now();
        let (result, updated) = match update.then(|| self.store.update_checkpoint()) {
            Some(Ok(stats)) => (Ok(stats), true),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "index checkpoint not updated; scanning the store");
                (self.store.write_checkpoint(), false)
            }
            None => (self.store.write_checkpoint(), false),
        };
        let took = started.elapsed();
        let mut state = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        state.last = Some((Instant::now(), took));
        match result {
            Ok(stats) => {
                // What it describes, which writes since `digest` may have moved.
                state.digest = Some(stats.digest);
                state.updates = if updated { state.updates + 1 } else { 0 };
                if updated {
                    metrics::counter!("veto_checkpoint_updates_total").increment(1);
                }
                metrics::counter!("veto_checkpoint_writes_total", "result" => "ok").increment(1);
                metrics::gauge!("veto_checkpoint_records").set(stats.records as f64);
                metrics::gauge!("veto_checkpoint_bytes").set(stats.bytes as f64);
                metrics::gauge!("veto_checkpoint_write_seconds").set(took.as_secs_f64());
                tracing::debug!(
                    records = stats.records,
                    bytes = stats.bytes,
                    elapsed_ms = took.as_millis() as u64,
                    "index checkpoint written"
                );
            }
            Err(e) => {
                let reason = match e {
                    CheckpointError::Inconsistent(_) => "inconsistent",
                    _ => "error",
                };
                metrics::counter!("veto_checkpoint_writes_total", "result" => reason).increment(1);
                tracing::warn!(error = %e, "index checkpoint not written");
            }
        }
    }
}

/// A batch of records read after the checkpoint, made ready to index.
struct StoredSince {
    /// The index keys of the records that have one.
    keys: Vec<(RecordId, IndexKey)>,
    /// The records without one (`peer` records), whole.
    others: Vec<Record>,
    /// The digest of every record of the batch.
    digest: SetDigest,
}

impl StoredSince {
    /// Fingerprints `records` and derives their index keys: the reading
    /// thread's share, so that the indexing thread only inserts.
    fn of(records: Vec<Record>) -> StoredSince {
        let mut batch = StoredSince {
            keys: Vec::with_capacity(records.len()),
            others: Vec::new(),
            digest: SetDigest::new(),
        };
        for record in records {
            batch.digest.add(&record.fingerprint());
            match IndexKey::of(&record.target) {
                Some(key) => batch.keys.push((record.id, key)),
                None => batch.others.push(record),
            }
        }
        batch
    }
}

/// A batch read, or why reading failed.
type Batch = Result<StoredSince, Unused>;

/// Indexes the batches this thread takes and those the helper sends, and
/// merges their digests. At the first failure it returns, dropping the
/// receiver, which ends the helper at its next send.
fn index_batches(
    enforcer: &mut Enforcer,
    take: impl Fn() -> Option<Batch>,
    from_helper: std::sync::mpsc::Receiver<Batch>,
) -> Result<SetDigest, Unused> {
    let mut digest = SetDigest::new();
    let mut index = |read: Batch| {
        let batch = read?;
        digest.merge(&batch.digest);
        let refused = enforcer.load_keys(&batch.keys).into_iter().next();
        match refused.or_else(|| enforcer.enforce(&batch.others).into_iter().next()) {
            Some((id, e)) => Err(Unused::Refused(format!("cannot index {id}: {e}"))),
            None => Ok(()),
        }
    };
    while let Some(read) = take() {
        index(read)?;
        from_helper.try_iter().try_for_each(&mut index)?;
    }
    from_helper.into_iter().try_for_each(index)?;
    Ok(digest)
}

/// Seqs per batch of records read after the checkpoint: a bounded amount of
/// memory in flight, and enough work per batch to keep both threads busy.
const STORED_SINCE_BATCH: u64 = 32_768;

/// `seqs` in consecutive pieces of at most [`STORED_SINCE_BATCH`].
fn batches(
    seqs: std::ops::RangeInclusive<u64>,
) -> impl Iterator<Item = std::ops::RangeInclusive<u64>> {
    let (start, end) = (*seqs.start(), *seqs.end());
    let mut next = (start <= end).then_some(start);
    std::iter::from_fn(move || {
        let from = next?;
        let to = end.min(from.saturating_add(STORED_SINCE_BATCH - 1));
        next = (to < end).then(|| to + 1);
        Some(from..=to)
    })
}

/// The lock that garbage collection and the checkpoint writer share.
pub(crate) type Maintenance = Mutex<()>;

#[cfg(test)]
mod tests {
    use super::{batches, STORED_SINCE_BATCH};
    use crate::node::tests::{from_a_peer, node};
    use veto_core::{Check, Frontier, Target};
    use veto_node::Enforcer;

    /// Enough records stored after a checkpoint for several batches, which
    /// both threads read: every one is indexed once and counted once, a
    /// `peer` record among them revokes its peer, and a check finds the
    /// tokens of the first batch and of the last.
    #[test]
    fn records_stored_since_are_all_indexed_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let mut records = from_a_peer(3 * STORED_SINCE_BATCH + 5);
        let peer = records.len() / 2;
        records[peer].target = Target::Peer {
            name: Some("gone.example".into()),
            cert_sha256: None,
        };
        node.store_remote(&records, &Frontier::default(), &[])
            .unwrap();
        let covered = node.store.covered().unwrap();
        let mut enforcer = Enforcer::default();
        let Ok(digest) = node.enforce_stored_since(&mut enforcer, &covered, &Frontier::default())
        else {
            panic!("the records since were not read");
        };
        assert_eq!(digest, node.store.digest().unwrap());
        assert_eq!(enforcer.len(), records.len() - 1, "every token record");
        assert_eq!(enforcer.revoked_peers().len(), 1);
        assert!(enforcer.revoked_peers().revokes_name("gone.example"));
        for record in [&records[0], &records[records.len() - 1]] {
            let Target::Token { jti, .. } = &record.target else {
                panic!("a token record");
            };
            let check = Check {
                jti: Some(jti),
                ..Check::default()
            };
            let hit = enforcer.check(&check).map(|h| h.record);
            assert_eq!(hit, Some(record.id), "a check of {jti}");
        }
    }

    #[test]
    fn batches_cover_a_range_exactly_once() {
        let b = STORED_SINCE_BATCH;
        for (lo, hi) in [
            (1, 1),
            (1, b),
            (1, b + 1),
            (5, 3 * b + 7),
            (u64::MAX - 3, u64::MAX),
        ] {
            let pieces: Vec<_> = batches(lo..=hi).collect();
            assert_eq!(*pieces[0].start(), lo);
            assert_eq!(*pieces.last().unwrap().end(), hi);
            for w in pieces.windows(2) {
                assert_eq!(*w[0].end() + 1, *w[1].start());
            }
            assert!(pieces.iter().all(|p| p.end() - p.start() < b));
        }
        let (lo, hi) = (3, 2);
        assert_eq!(batches(lo..=hi).count(), 0);
    }
}
