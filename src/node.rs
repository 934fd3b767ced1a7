//! The node: the store, the in-memory lookup index and digest, and the clock,
//! wired together behind the API's [`Backend`] trait.
//!
//! Every write follows one rule: the record is flushed to sled first, and only
//! then enters the index, the digest and replication. So an acknowledged
//! revocation survives `kill -9`, and nothing is ever served or gossiped that a
//! crash could take back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use tokio::sync::mpsc;
use veto_api::{
    Backend, BackendError, Feed, NodeInfo, PeerView, RecordChunks, Revoked, StatusView,
};
use veto_core::{
    AuditQuery, Check, HybridClock, LookupIndex, Record, RecordId, Revocation, SetDigest,
};
use veto_store::Store;

use crate::peers::PeerDirectory;

/// Wall-clock time since the Unix epoch. The one place the node reads the OS clock.
pub(crate) fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// What the index answers from: rebuilt from the store at start, then kept in
/// step with every durable write and prune.
#[derive(Default)]
struct Memory {
    index: LookupIndex,
    digest: SetDigest,
}

/// One veto node.
pub(crate) struct Node {
    info: NodeInfo,
    store: Store,
    memory: RwLock<Memory>,
    clock: Arc<HybridClock>,
    /// Serialises local appends so that sequence numbers are handed out
    /// contiguously and in the order they become durable.
    next_seq: tokio::sync::Mutex<u64>,
    ready: AtomicBool,
    /// New records, local or replicated, for replication and watchers.
    local_records: mpsc::UnboundedSender<Vec<Record>>,
    peers: Arc<PeerDirectory>,
    /// Numbers every durable record for watchers and snapshots.
    feed: Arc<Feed>,
}

fn storage(err: impl std::fmt::Display) -> BackendError {
    BackendError::Storage(err.to_string())
}

impl Node {
    /// Wraps an opened store. The node is not ready until [`Node::load`] ran.
    pub(crate) fn new(
        store: Store,
        name: String,
        region: String,
        max_clock_offset: Duration,
        peers: Arc<PeerDirectory>,
    ) -> anyhow::Result<(Arc<Node>, mpsc::UnboundedReceiver<Vec<Record>>)> {
        let id = store.node_id();
        let covered = store
            .covered()
            .context("cannot read the covered frontier")?;
        let next_seq = covered.max_seq(id) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let node = Node {
            info: NodeInfo { id, name, region },
            store,
            memory: RwLock::new(Memory::default()),
            clock: Arc::new(HybridClock::new(id, max_clock_offset)),
            next_seq: tokio::sync::Mutex::new(next_seq),
            ready: AtomicBool::new(false),
            local_records: tx,
            peers,
            feed: crate::feed::new_feed(),
        };
        Ok((Arc::new(node), rx))
    }

    /// Rebuilds the index and digest from the store, then marks the node ready.
    pub(crate) fn load(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut memory = Memory::default();
        memory
            .index
            .reserve_tokens(self.store.live_count() as usize);
        let mut failure = None;
        self.store
            // Only ids and targets: the index needs nothing else, and skipping
            // the rest of each record makes a 10M-record restart faster.
            .for_each_target(|id, target| {
                if let Err(e) = memory.index.insert(id, &target) {
                    failure.get_or_insert(e);
                }
            })
            .context("cannot read records from the store")?;
        // The store keeps the digest beside the records, updated in the same
        // atomic batches, so it need not be recomputed record by record here.
        memory.digest = self.store.digest().context("cannot read the set digest")?;
        if let Some(e) = failure {
            return Err(e).context("cannot index a stored record");
        }
        let count = memory.index.len();
        *self.memory.write().unwrap_or_else(|p| p.into_inner()) = memory;
        metrics::gauge!("veto_records").set(count as f64);
        self.ready.store(true, Ordering::Release);
        tracing::info!(
            records = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "index loaded"
        );
        Ok(())
    }

    /// The store, for the replication driver.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The node's clock, shared with the replication engine so that stamps
    /// observed from peers order later local revocations.
    pub(crate) fn clock_handle(&self) -> Arc<HybridClock> {
        Arc::clone(&self.clock)
    }

    /// Records that became durable here (local or from a peer): index them.
    fn index_durable(&self, records: &[Record]) {
        let mut memory = self.memory.write().unwrap_or_else(|p| p.into_inner());
        for record in records {
            if let Err(e) = memory.index.insert_record(record) {
                // Only a 2^48 seq or 65,536 origins get here; the record is still
                // stored and replicated, but this node cannot enforce it.
                tracing::error!(id = %record.id, error = %e, "record stored but not indexed");
                metrics::counter!("veto_index_errors_total").increment(1);
                continue;
            }
            memory.digest.add(&record.fingerprint());
        }
        metrics::gauge!("veto_records").set(memory.index.len() as f64);
        drop(memory);
        // After the store write, so a snapshot at any cursor holds every record
        // numbered up to it; after the index, so a watcher told of a record
        // finds the node enforcing it.
        self.feed.publish(records);
    }

    /// Stores records received from a peer (already deduplicated by the
    /// replication engine), then indexes them. Returns the ones that were new.
    pub(crate) fn store_remote(
        &self,
        records: &[Record],
    ) -> Result<Vec<Record>, veto_store::StoreError> {
        let new = self.store.append(records)?;
        self.index_durable(&new);
        Ok(new)
    }

    /// One garbage-collection pass: prunes records past `expires_at + grace`.
    pub(crate) fn collect_garbage(&self, grace: Duration) -> Result<usize, veto_store::StoreError> {
        let now = wall_clock().as_secs();
        let mut total = 0;
        loop {
            let expired = self.store.expired(now, grace.as_secs(), 10_000)?;
            if expired.is_empty() {
                break;
            }
            let ids: Vec<RecordId> = expired.iter().map(|r| r.id).collect();
            self.store.prune(&ids)?;
            let mut memory = self.memory.write().unwrap_or_else(|p| p.into_inner());
            for record in &expired {
                memory.index.remove(record.id, &record.target);
                memory.digest.remove(&record.fingerprint());
            }
            metrics::gauge!("veto_records").set(memory.index.len() as f64);
            total += expired.len();
        }
        if total > 0 {
            tracing::info!(pruned = total, "garbage collection");
        }
        Ok(total)
    }
}

#[async_trait]
impl Backend for Node {
    fn node(&self) -> NodeInfo {
        self.info.clone()
    }

    async fn revoke(&self, batch: Vec<Revocation>) -> Result<Vec<Record>, BackendError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut next_seq = self.next_seq.lock().await;
        let now = wall_clock();
        let records: Vec<Record> = batch
            .into_iter()
            .enumerate()
            .map(|(i, revocation)| {
                let id = RecordId {
                    origin: self.info.id,
                    seq: *next_seq + i as u64,
                };
                revocation.into_record(id, self.clock.stamp(now))
            })
            .collect();
        let store = self.store.clone();
        let to_store = records.clone();
        let stored = tokio::task::spawn_blocking(move || store.append(&to_store))
            .await
            .map_err(storage)?
            .map_err(storage)?;
        *next_seq += records.len() as u64;
        drop(next_seq);
        self.index_durable(&stored);
        for record in &records {
            metrics::counter!("veto_revocations_total", "scope" => record.target.kind().as_str(), "origin" => "local")
                .increment(1);
        }
        // The receiver lives as long as the node; if it is gone the node is
        // shutting down and peers will repair from the store.
        let _ = self.local_records.send(records.clone());
        Ok(records)
    }

    fn check(&self, check: &Check<'_>) -> Option<Revoked> {
        let hit = self
            .memory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .index
            .check(check)?;
        let record = self.store.get(hit.record).ok().flatten();
        Some(Revoked {
            scope: hit.scope,
            id: hit.record.to_string(),
            reason: record
                .as_ref()
                .map(|r| r.reason.clone())
                .unwrap_or_default(),
            revoked_at: record.map(|r| r.revoked_at()).unwrap_or_default(),
        })
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<Record>, BackendError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.audit(&query))
            .await
            .map_err(storage)?
            .map_err(storage)
    }

    fn status(&self) -> StatusView {
        let memory = self.memory.read().unwrap_or_else(|p| p.into_inner());
        StatusView {
            node: self.info.clone(),
            revocations: memory.digest.count(),
            digest: memory.digest.to_hex(),
            peers: self.peers.views(),
        }
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn peers(&self) -> Vec<PeerView> {
        self.peers.views()
    }

    async fn add_peer(&self, addr: String, name: Option<String>) -> Result<PeerView, BackendError> {
        self.peers.add(&self.store, addr, name).await
    }

    fn feed(&self) -> Option<Arc<Feed>> {
        Some(Arc::clone(&self.feed))
    }

    fn snapshot_records(&self) -> Result<RecordChunks, BackendError> {
        crate::feed::snapshot(&self.store)
    }

    async fn remove_peer(&self, name_or_addr: &str) -> Result<(), BackendError> {
        self.peers.remove(&self.store, name_or_addr).await
    }
}
