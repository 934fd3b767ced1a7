//! The node: the store, the in-memory lookup index and the clock, wired
//! together behind the API's [`Backend`] trait. The order of every write is
//! veto-node's (`veto_node::durable`), the same the simulator runs.
//!
//! Every write follows one rule: the record is flushed to sled first, and only
//! then enters the index, the digest and replication. So an acknowledged
//! revocation survives `kill -9`, and nothing is ever served or gossiped that a
//! crash could take back.
//!
//! The node's id is drawn afresh at every start (`veto_node::fresh_writer`): the
//! records of one process lifetime are numbered 1, 2, ... under an id no data
//! directory has used, so a restored backup or a cloned data directory can
//! never issue an id that names two different revocations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use tokio::sync::mpsc;
use veto_api::{
    Backend, BackendError, ClockView, Feed, NodeInfo, PeerView, RecordChunks, Revoked, StatusView,
    StorageView,
};
use veto_core::receipt::{OriginView, ReceiptView, Wait};
use veto_core::{AuditQuery, Check, Frontier, HybridClock, Record, RecordId, Revocation};
use veto_gossip::engine::{ClockCheck, ClockVerdict};
use veto_node::{Ack, Enforcer, Faults, GcHold, LocalWriteError, RevokedPeers, Writer};
use veto_store::{Store, StoreError};

use crate::audit_log::{AuditLog, Source};
pub(crate) use crate::clock_steps::wall_clock;
use crate::clock_steps::Reading;

mod checkpoint;
mod enforcement;
mod load;
#[cfg(test)]
mod tests;
use crate::peers::PeerDirectory;
pub(crate) use enforcement::Enforcement;

/// One veto node.
pub(crate) struct Node {
    info: NodeInfo,
    store: Store,
    /// What lookups answer from, and which peer certificates are revoked:
    /// rebuilt from the store at start, then kept in step with every durable
    /// write and prune.
    enforcer: Arc<RwLock<Enforcer>>,
    /// Held shared from a store write until its records are indexed, and
    /// exclusively to read what the store holds for the status or a receipt:
    /// so neither ever counts a record that a check would not find yet.
    applying: Arc<RwLock<()>>,
    clock: Arc<HybridClock>,
    max_clock_offset: Duration,
    /// Serialises local appends so that sequence numbers are handed out
    /// contiguously and in the order they become durable.
    writer: tokio::sync::Mutex<Writer>,
    ready: AtomicBool,
    /// New records, local or replicated, for replication and watchers.
    local_records: mpsc::UnboundedSender<Vec<Record>>,
    peers: Arc<PeerDirectory>,
    /// Numbers every durable record for watchers and snapshots.
    feed: Arc<Feed>,
    /// The replication engine's latest comparison of this node's clock with
    /// its peers', and both clocks' readings when it was reported.
    clock_check: Mutex<(ClockCheck, Reading)>,
    /// Deliberate bugs, in builds with the `inject-bugs` feature only.
    faults: Faults,
    /// `--audit-log`: a line per record made or taken in.
    audit: Option<Arc<AuditLog>>,
    /// Who holds what across the cluster: receipts and watermarks.
    enforcement: Enforcement,
    /// Held by garbage collection and by the checkpoint writer, which must
    /// not run at once.
    maintenance: checkpoint::Maintenance,
    /// The last index checkpoint.
    checkpoint: Mutex<checkpoint::CheckpointState>,
}

/// Records that became durable here (local or from a peer): enforce them.
fn index(enforcer: &RwLock<Enforcer>, records: &[Record]) {
    let mut enforcer = enforcer.write().unwrap_or_else(|p| p.into_inner());
    for (id, e) in enforcer.enforce(records) {
        // The record is still stored and replicated, but this node
        // cannot enforce it.
        tracing::error!(%id, error = %e, "record stored but not indexed");
        metrics::counter!("veto_index_errors_total").increment(1);
    }
    metrics::gauge!("veto_records").set(enforcer.len() as f64);
    metrics::gauge!("veto_hit_details_records").set(enforcer.details_len() as f64);
}

/// The lookup index as the audit trail reads it: the lock is taken for each
/// question and never held across the store's reads.
struct EnforcerIndex(Arc<RwLock<Enforcer>>);

impl EnforcerIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Enforcer> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl veto_store::AuditIndex for EnforcerIndex {
    fn ids_for_key(&self, key: &str) -> Vec<RecordId> {
        self.read().index().ids_for_key(key)
    }
    fn qualifies(&self, iss: &str) -> bool {
        self.read().index().qualifies(iss)
    }
    fn map_len(&self, map: veto_core::IndexMap) -> usize {
        self.read().index().map_len(map)
    }
    fn ids_by_origin(&self, map: veto_core::IndexMap) -> Vec<Vec<RecordId>> {
        self.read().index().ids_by_origin(map)
    }
    fn peer_records(&self) -> Vec<RecordId> {
        self.read().revoked_peers().records()
    }
}

fn storage(err: impl std::fmt::Display) -> BackendError {
    BackendError::Storage(err.to_string())
}

fn store_error(err: StoreError) -> BackendError {
    match err {
        StoreError::Halted(why) => BackendError::WritesHalted(why),
        other => storage(other),
    }
}

fn local_write_error(err: LocalWriteError<StoreError>) -> BackendError {
    match err {
        LocalWriteError::Storage(e) => store_error(e),
        // Only a reused id gets here: refused rather than acknowledge a
        // record that is not the one stored.
        taken @ LocalWriteError::IdsTaken { .. } => storage(taken),
    }
}

/// What a node is started with besides its store and peers.
pub(crate) struct NodeSettings {
    pub(crate) name: String,
    pub(crate) region: String,
    pub(crate) max_clock_offset: Duration,
    pub(crate) feed: veto_api::FeedConfig,
    /// Deliberate bugs (none unless built with `inject-bugs` and asked for).
    pub(crate) faults: Faults,
    pub(crate) audit: Option<Arc<AuditLog>>,
}

impl Node {
    /// Wraps an opened store. The node is not ready until [`Node::load`] ran.
    pub(crate) fn new(
        store: Store,
        settings: NodeSettings,
        peers: Arc<PeerDirectory>,
    ) -> anyhow::Result<(Arc<Node>, mpsc::UnboundedReceiver<Vec<Record>>)> {
        let NodeSettings {
            name,
            region,
            max_clock_offset,
            feed,
            faults,
            audit,
        } = settings;
        let covered = store
            .covered()
            .context("cannot read the covered frontier")?;
        // Never an origin the store covers: so never one a copy of this data
        // directory, or a peer, has used.
        let id =
            veto_node::fresh_writer(&mut rand::thread_rng(), |id| covered.origin(id).is_some());
        let life = veto_node::begin_life(id, &covered, store.last_local_stamp(), max_clock_offset);
        let (tx, rx) = mpsc::unbounded_channel();
        let enforcer = Arc::new(RwLock::new(Enforcer::default()));
        let enforcement = Enforcement::new(
            &NodeInfo {
                id,
                name: name.clone(),
                region: region.clone(),
            },
            Arc::clone(&peers),
            Arc::clone(&enforcer),
        );
        let node = Node {
            info: NodeInfo { id, name, region },
            store,
            enforcer,
            applying: Arc::default(),
            clock: life.clock,
            max_clock_offset,
            writer: tokio::sync::Mutex::new(life.writer),
            ready: AtomicBool::new(false),
            local_records: tx,
            enforcement,
            peers,
            feed: crate::feed::new_feed(feed),
            clock_check: Mutex::new((ClockCheck::UNCONFIRMED, Reading::now())),
            faults,
            audit,
            maintenance: Mutex::new(()),
            checkpoint: Mutex::new(Default::default()),
        };
        Ok((Arc::new(node), rx))
    }

    /// The store, for the replication driver.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Receipts and watermarks, which the replication driver feeds.
    pub(crate) fn enforcement(&self) -> &Enforcement {
        &self.enforcement
    }

    /// Runs `f` over the peer certificates this node's `peer` records
    /// revoke, under the enforcer's read lock (taken before the peer
    /// directory's, always in that order).
    pub(crate) fn with_revoked_peers<T>(&self, f: impl FnOnce(&RevokedPeers) -> T) -> T {
        f(self
            .enforcer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .revoked_peers())
    }

    /// The deliberate bugs this node runs with (none in release builds).
    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The node's clock, shared with the replication engine so that stamps
    /// observed from peers order later local revocations.
    pub(crate) fn clock_handle(&self) -> Arc<HybridClock> {
        Arc::clone(&self.clock)
    }

    /// Now for the API's cutoffs and bounds, in whole Unix seconds: the
    /// hybrid clock, so never behind a stamp this node made or took in, but
    /// never more than the maximum clock offset ahead of the wall clock. A
    /// clock that ran ahead and was put right leaves the hybrid clock ahead
    /// until real time catches up, and a cutoff taken from it would revoke
    /// the tokens issued meanwhile.
    pub(crate) fn cutoff_now_secs(&self) -> u64 {
        let wall = wall_clock();
        let hybrid = self.clock.stamp(wall).as_unix();
        veto_node::cutoff_now(hybrid, wall, self.max_clock_offset).as_secs()
    }

    /// The replication driver reports the clock comparison.
    pub(crate) fn set_clock_check(&self, check: ClockCheck) {
        *self.clock_check.lock().unwrap_or_else(|p| p.into_inner()) = (check, Reading::now());
        metrics::gauge!("veto_clock_skewed")
            .set(f64::from(u8::from(check.verdict == ClockVerdict::Skewed)));
        if let Some(ns) = check.offset_ns {
            metrics::gauge!("veto_clock_offset_seconds").set(ns as f64 / 1e9);
        }
    }

    fn clock_check(&self) -> ClockCheck {
        self.clock_check.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Whether the store holds all of `ids`.
    fn holds(&self, ids: &[RecordId]) -> bool {
        let _settled = self.applying.write().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .all(|id| matches!(self.store.get(*id), Ok(Some(_))))
    }

    /// Records that became durable here and are indexed: tell watchers.
    fn publish_indexed(&self, records: &[Record]) {
        // After the store write, so a snapshot at any cursor holds every record
        // numbered up to it; after the index, so a watcher told of a record
        // finds the node enforcing it.
        self.feed.publish(records);
    }

    /// Stores what a peer sent (already deduplicated by the replication
    /// engine): new records, ids to cover without data, and records to hold
    /// again under ids covered without data. Indexes what was stored.
    pub(crate) fn store_remote(
        &self,
        records: &[Record],
        cover: &Frontier,
        restore: &[Record],
    ) -> Result<(), StoreError> {
        let applying = self.applying.read().unwrap_or_else(|p| p.into_inner());
        let stored = veto_node::store_from_peer(&mut self.store.clone(), records, cover, restore)?;
        if let Some(audit) = &self.audit {
            audit.append(&stored, Source::Replicated, wall_clock().as_secs());
        }
        index(&self.enforcer, &stored);
        drop(applying);
        self.publish_indexed(&stored);
        Ok(())
    }

    /// Why garbage collection must wait, if it must: this node's clock alone
    /// decides what has expired, so it must agree with the cluster's first.
    fn gc_hold(&self) -> Option<&'static str> {
        let (check, at) = *self.clock_check.lock().unwrap_or_else(|p| p.into_inner());
        // A step since the check was reported voids it; the replication
        // driver notices the step within half a second and measures again.
        let limit = i64::try_from(self.max_clock_offset.as_millis() / 2).unwrap_or(i64::MAX);
        let stepped = at.step_since(&Reading::now()).abs() > limit;
        veto_node::may_collect(&check, self.peers.count(), stepped)
            .err()
            .map(GcHold::as_str)
    }

    /// One garbage-collection pass: prunes records past `expires_at + grace`.
    pub(crate) fn collect_garbage(&self, grace: Duration) -> Result<usize, StoreError> {
        if let Some(reason) = self.gc_hold() {
            metrics::counter!("veto_gc_paused_total", "reason" => reason).increment(1);
            tracing::warn!(
                reason,
                "garbage collection paused: this node's clock has not been confirmed \
                 against its peers' (records are kept until it is)"
            );
            return Ok(0);
        }
        let _maintenance = self.maintenance.lock().unwrap_or_else(|p| p.into_inner());
        let now = wall_clock().as_secs();
        let total =
            veto_node::collect_expired(&mut self.store.clone(), now, grace.as_secs(), |pruned| {
                let mut enforcer = self.enforcer.write().unwrap_or_else(|p| p.into_inner());
                enforcer.forget(pruned);
                metrics::gauge!("veto_records").set(enforcer.len() as f64);
                metrics::gauge!("veto_hit_details_records").set(enforcer.details_len() as f64);
            })?;
        if total > 0 {
            tracing::info!(pruned = total, "garbage collection");
        }
        Ok(total)
    }

    /// This node's own records are durable and indexed (or, with the
    /// injected bug, about to be): count them and hand them to watchers and
    /// replication.
    fn acknowledged(&self, records: &[Record]) {
        self.publish_indexed(records);
        for record in records {
            metrics::counter!("veto_revocations_total", "scope" => record.target.kind().as_str(), "origin" => "local")
                .increment(1);
        }
        // The receiver lives as long as the node; if it is gone the node is
        // shutting down and peers will repair from the store.
        let _ = self.local_records.send(records.to_vec());
    }

    /// Refuses a batch with a bulk cutoff while this node's clock disagrees
    /// with its peers': the cutoff came from that clock.
    fn check_bulk_allowed(&self, batch: &[Revocation]) -> Result<(), BackendError> {
        veto_node::may_set_cutoffs(&self.clock_check(), batch, self.max_clock_offset).map_err(
            |refused| {
                metrics::counter!("veto_revocations_refused_total", "reason" => "clock_skew")
                    .increment(1);
                BackendError::ClockSkew(refused.to_string())
            },
        )
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
        if let Some(why) = self.store.halted() {
            return Err(BackendError::WritesHalted(why));
        }
        self.check_bulk_allowed(&batch)?;
        let mut writer = self.writer.lock().await;
        let records = writer.prepare(batch, &self.clock, wall_clock());
        let mut store = self.store.clone();
        let to_store = records.clone();
        let audit = self.audit.clone();
        let ack = self.faults.ack();
        let (enforcer, applying) = (Arc::clone(&self.enforcer), Arc::clone(&self.applying));
        let write = tokio::task::spawn_blocking(move || {
            let applying = applying.read().unwrap_or_else(|p| p.into_inner());
            veto_node::store_local(&mut store, &to_store)?;
            // Logged once durable, before the answer.
            if let Some(audit) = audit {
                audit.append(&to_store, Source::Local, wall_clock().as_secs());
            }
            if ack == Ack::AfterDurable {
                index(&enforcer, &to_store);
            }
            drop(applying);
            Ok(())
        });
        match ack {
            Ack::AfterDurable => write.await.map_err(storage)?.map_err(local_write_error)?,
            // The injected bug: answered while the write goes on, unawaited.
            Ack::BeforeDurable => {
                drop(write);
                index(&self.enforcer, &records);
            }
        }
        writer.commit(records.len());
        drop(writer);
        self.acknowledged(&records);
        Ok(records)
    }

    fn check(&self, check: &Check<'_>) -> Option<Revoked> {
        let enforcer = self.enforcer.read().unwrap_or_else(|p| p.into_inner());
        let hit = enforcer.check(check)?;
        if let Some(details) = enforcer.details(hit.record) {
            return Some(Revoked {
                scope: hit.scope,
                id: hit.record.to_string(),
                reason: details.reason.to_owned(),
                revoked_at: details.revoked_at,
            });
        }
        drop(enforcer);
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
        let index = EnforcerIndex(Arc::clone(&self.enforcer));
        tokio::task::spawn_blocking(move || store.audit_indexed(&query, &index))
            .await
            .map_err(storage)?
            .map_err(store_error)
    }

    fn status(&self) -> StatusView {
        let settled = self.applying.write().unwrap_or_else(|p| p.into_inner());
        let digest = self.store.digest().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the set digest for the status");
            Default::default()
        });
        drop(settled);
        let check = self.clock_check();
        StatusView {
            node: self.info.clone(),
            revocations: digest.count(),
            digest: digest.to_hex(),
            peers: self.peers.views(),
            clock: ClockView {
                state: check.verdict.as_str().to_owned(),
                offset_ms: check.offset_ns.map(|ns| ns / 1_000_000),
                peers_measured: check.peers,
                peers_off: check.off,
            },
            storage: StorageView {
                halted: self.store.halted(),
                missing_records: self.store.damage().map(|d| d.missing),
            },
            origins: self.enforcement.watermarks(),
        }
    }

    fn receipt(&self, ids: &[RecordId]) -> Option<ReceiptView> {
        self.enforcement.receipt(ids, self.holds(ids))
    }

    async fn wait_receipt(
        &self,
        ids: &[RecordId],
        wait: &Wait,
        timeout: Duration,
    ) -> Option<ReceiptView> {
        // Not `receipt`'s "known" test: the records were just made here,
        // and the driver may not have taken them in yet.
        Some(
            self.enforcement
                .wait(ids, wait, timeout, self.holds(ids))
                .await,
        )
    }

    fn origins(&self) -> Vec<OriginView> {
        self.enforcement.watermarks()
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn writes_halted(&self) -> Option<String> {
        self.store.halted()
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
