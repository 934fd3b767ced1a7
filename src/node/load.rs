//! Loading the node's memory from its store: the lookup index and digest,
//! read at start and again after the store recovered from a failed write,
//! with the check that records and digests agree.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use veto_core::{Frontier, LookupIndex, NodeId, RecordId};
use veto_node::{Enforcer, RevokedPeers};

use super::Node;

/// The ids a scan of the store read, which come in id order: kept as ranges
/// per origin, extended in place (a restart reads millions of them).
#[derive(Default)]
struct Scanned {
    ranges: Vec<(NodeId, u64, u64)>,
}

impl Scanned {
    fn push(&mut self, id: RecordId) {
        match self.ranges.last_mut() {
            Some((origin, _, end))
                if *origin == id.origin && end.checked_add(1) == Some(id.seq) =>
            {
                *end = id.seq;
            }
            _ => self.ranges.push((id.origin, id.seq, id.seq)),
        }
    }

    fn into_frontier(self) -> Frontier {
        let mut frontier = Frontier::new();
        for (origin, start, end) in self.ranges {
            frontier.insert_range(origin, start..=end);
        }
        frontier
    }
}

impl Node {
    /// Reads the index from the store, and checks the store's digests
    /// against what it read.
    fn read_memory(&self) -> anyhow::Result<Enforcer> {
        let mut index = LookupIndex::new();
        let mut peers = RevokedPeers::default();
        index.reserve_tokens(self.store.live_count() as usize);
        let mut failure = None;
        let mut scanned = Scanned::default();
        self.store
            // Only ids and targets: the index needs nothing else, and skipping
            // the rest of each record makes a 10M-record restart faster.
            .for_each_target(|id, target| {
                scanned.push(id);
                if let Err(e) = Enforcer::load(&mut index, &mut peers, id, &target) {
                    failure.get_or_insert(e);
                }
            })
            .context("cannot read records from the store")?;
        let scanned = scanned.into_frontier();
        // The store keeps the digests beside the records, updated in the same
        // atomic batches, so they need not be recomputed record by record
        // here; only their counts are checked against what was read.
        let digest = self.store.digest().context("cannot read the set digest")?;
        let digests = self
            .store
            .origin_digests()
            .context("cannot read the per-origin digests")?;
        let agree = digest.count() == scanned.count()
            && digests.len() == scanned.origins().count()
            && digests
                .iter()
                .all(|(o, d)| scanned.origin(*o).map(|s| s.count()) == Some(d.count()));
        if !agree {
            self.reconcile_digests(&scanned, digest.count())?;
        }
        if let Some(e) = failure {
            return Err(e).context("cannot index a stored record");
        }
        Ok(Enforcer::from_parts(index, peers))
    }

    /// The records a scan found and the digests disagree: the file lost
    /// records under ids it still covers (or its metadata is damaged). Checks
    /// that the records are really gone, not merely hidden from scans by a
    /// damaged tree (then the node must not start on it), recomputes the
    /// digests from what is there, so that peers send back what is missing,
    /// and counts the loss.
    fn reconcile_digests(&self, scanned: &Frontier, claimed: u64) -> anyhow::Result<()> {
        let covered = self.store.covered()?;
        let mut hidden = 0u64;
        for (origin, ranges) in covered.missing_in(scanned) {
            for seq in ranges.into_iter().flatten() {
                if self.store.get(RecordId { origin, seq })?.is_some() {
                    hidden += 1;
                }
            }
        }
        if hidden > 0 {
            anyhow::bail!(
                "data dir {} holds corrupt data: {hidden} records are readable one by one but \
                 missing from a scan of the records tree (its structure is damaged); move the \
                 data dir away and start the node on an empty one to refetch from its peers",
                self.store.path().display()
            );
        }
        let lost = claimed.saturating_sub(scanned.count());
        tracing::error!(
            digest_counts = claimed,
            stored = scanned.count(),
            lost,
            "DATA LOSS: the store's records and its digests disagree; recomputing the \
             digests so that peers send back what was lost"
        );
        self.store
            .rebuild_digests(lost)
            .context("cannot recompute the digests")?;
        Ok(())
    }

    /// Rebuilds the index from the checkpoint and the store's changes since
    /// (or, without a usable checkpoint, from every record), then marks the
    /// node ready.
    pub(crate) fn load(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let enforcer = match self.read_memory_from_checkpoint() {
            Some(enforcer) => enforcer,
            None => self.read_memory()?,
        };
        let count = enforcer.len();
        *self.enforcer.write().unwrap_or_else(|p| p.into_inner()) = enforcer;
        metrics::gauge!("veto_records").set(count as f64);
        self.ready.store(true, Ordering::Release);
        self.note_details_in_background();
        tracing::info!(
            records = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "index loaded"
        );
        if let Some(d) = self.store.damage() {
            tracing::error!(
                missing = d.missing,
                covered_before = d.covered_before,
                covered_now = d.covered_at_open,
                "serving with records missing from a damaged database; peers send back what they hold"
            );
        }
        Ok(())
    }

    /// After a failed write: once the disk takes writes again, reopens the
    /// store and rebuilds the index from what is on disk (the failed write may
    /// have left part of itself there). Lookups are served from the old index
    /// meanwhile. Returns whether writes resumed.
    pub(crate) fn recover_storage(&self) -> anyhow::Result<bool> {
        if !self.store.recover()? {
            return Ok(false);
        }
        let enforcer = self.read_memory()?;
        let count = enforcer.len();
        *self.enforcer.write().unwrap_or_else(|p| p.into_inner()) = enforcer;
        metrics::gauge!("veto_records").set(count as f64);
        self.note_details_in_background();
        // Records of the failed write that reached the disk keep their seqs,
        // and, enforced here now, go to the peers like any other.
        let on_disk = self.store.covered()?.max_seq(self.info.id);
        let mut writer = self.writer.blocking_lock();
        if let Some(seqs) = writer.recover(on_disk) {
            let landed = self.store.read_range(self.info.id, seqs, usize::MAX)?;
            tracing::warn!(
                records = landed.len(),
                "part of a failed local write reached the disk; it is enforced and replicated"
            );
            let _ = self.local_records.send(landed);
        }
        Ok(true)
    }

    /// Reads every stored record on a thread of its own and keeps what its
    /// hits report in memory (see `veto_node::details`). The index is loaded
    /// from ids and targets alone, so that a restart serves sooner; until
    /// this is done, hits read their record from the store. A record pruned
    /// between its read here and its noting leaves 8 bytes behind, never a
    /// wrong answer: details are only read for what the index holds.
    fn note_details_in_background(&self) {
        /// Records noted under one hold of the write lock.
        const BATCH: usize = 4_096;
        let store = self.store.clone();
        let enforcer = Arc::downgrade(&self.enforcer);
        let spawned = std::thread::Builder::new()
            .name("veto-hit-details".into())
            .spawn(move || {
                // The load's own buffers (a checkpoint file, its keys
                // collected for the bulk load) are freed by now, but kept
                // mapped by the loading thread's arena.
                crate::heap::give_back();
                let started = Instant::now();
                let mut batch = Vec::with_capacity(BATCH);
                let flush = |batch: &mut Vec<veto_core::Record>| {
                    // A node that is gone needs no details.
                    if let Some(e) = enforcer.upgrade() {
                        e.write()
                            .unwrap_or_else(|p| p.into_inner())
                            .note_details(batch);
                    }
                    batch.clear();
                };
                let read = store.for_each_record(|record| {
                    batch.push(record);
                    if batch.len() == BATCH {
                        flush(&mut batch);
                    }
                });
                flush(&mut batch);
                drop(batch);
                // Every record went through this thread's malloc arena,
                // which keeps the memory once it is freed.
                crate::heap::give_back();
                let noted = enforcer
                    .upgrade()
                    .map(|e| e.read().unwrap_or_else(|p| p.into_inner()).details_len());
                match (read, noted) {
                    (Err(e), _) => tracing::warn!(
                        error = %e,
                        "cannot read every record's details; hits on the rest read the store"
                    ),
                    (Ok(()), Some(noted)) => {
                        metrics::gauge!("veto_hit_details_records").set(noted as f64);
                        tracing::info!(
                            noted,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "what hits report is in memory"
                        );
                    }
                    (Ok(()), None) => {}
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the thread that reads record details");
        }
    }
}
