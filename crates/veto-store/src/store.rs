//! The state every operation shares, and the small operations on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use veto_core::{Frontier, NodeId, SetDigest};

use crate::codec::encode_meta;
use crate::error::StoreError;
use crate::marker::Marker;

/// The on-disk format this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

pub(crate) const TREE_RECORDS: &str = "records";
pub(crate) const TREE_BY_HLC: &str = "by_hlc";
pub(crate) const TREE_BY_EXPIRY: &str = "by_expiry";
pub(crate) const TREE_META: &str = "meta";
pub(crate) const TREE_PEERS: &str = "peers";
pub(crate) const TREE_PRUNED_LOG: &str = "pruned_log";

pub(crate) const KEY_FORMAT: &[u8] = b"format";
pub(crate) const KEY_NODE_ID: &[u8] = b"node_id";
pub(crate) const KEY_FRONTIER: &[u8] = b"frontier";
pub(crate) const KEY_DIGEST: &[u8] = b"digest";
pub(crate) const KEY_ORIGIN_DIGESTS: &[u8] = b"origin_digests";
pub(crate) const KEY_LOST_RECORDS: &[u8] = b"lost_records";
pub(crate) const KEY_LAST_STAMP: &[u8] = b"last_local_stamp";
/// The epoch of the index checkpoint whose prunes `pruned_log` holds.
pub(crate) const KEY_PRUNED_LOG_EPOCH: &[u8] = b"pruned_log_epoch";
pub(crate) const SETTING_PREFIX: &[u8] = b"setting/";

/// Extra accesses reported per chunk read: see [`Store::touch`].
const LRU_TOUCHES: usize = 3;

/// How to open a data directory.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Upper bound of sled's page cache, in bytes. Records beyond it stay on disk
    /// and are read back on demand, so memory does not grow with the record
    /// count. sled's accounting is approximate: with the default 64 MiB, a test
    /// process holding 10 million records stayed under 160 MiB resident through
    /// ingest, a full scan and random reads.
    pub cache_capacity_bytes: u64,
    /// How often sled flushes in the background, in milliseconds (`None`: only
    /// explicit flushes). Writes through [`Store`] flush themselves; this only
    /// bounds how long other writes stay in memory.
    pub background_flush_ms: Option<u64>,
    /// How long to wait for another holder of the directory to let go before
    /// failing with [`OpenError::Locked`].
    pub lock_wait: Duration,
    /// Writes stop (and the store halts, see [`StoreError::Halted`]) while the
    /// file system has less than this free, so that sled never meets a full
    /// disk; they resume once there is room again ([`Store::recover`]). Zero
    /// turns the check off.
    pub min_free_bytes: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            cache_capacity_bytes: 64 * 1024 * 1024,
            background_flush_ms: Some(500),
            lock_wait: Duration::from_secs(1),
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the writers share. Guarded by one mutex so that the "already covered"
/// check and the write that covers are one step.
pub(crate) struct WriteState {
    /// Every id written to sled, flushed or not.
    pub(crate) frontier: Frontier,
    /// The digest of the live records written to sled.
    pub(crate) digest: SetDigest,
    /// The same, per origin.
    pub(crate) per_origin: BTreeMap<NodeId, SetDigest>,
}

/// One open sled database and its trees. Replaced whole when the store
/// recovers from a failed write (see [`Store::recover`]).
pub(crate) struct Trees {
    pub(crate) db: sled::Db,
    pub(crate) records: sled::Tree,
    pub(crate) by_hlc: sled::Tree,
    pub(crate) by_expiry: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) peers: sled::Tree,
    /// Records pruned since the last index checkpoint was started.
    pub(crate) pruned_log: sled::Tree,
}

pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) opts: OpenOptions,
    pub(crate) node_id: NodeId,
    /// `None` only while [`Store::recover`] swaps the database.
    pub(crate) trees: RwLock<Option<Arc<Trees>>>,
    pub(crate) write: Mutex<WriteState>,
    /// The ids known to be on disk: the frontier as of the last flush that
    /// completed. This is what the node may tell peers it holds.
    pub(crate) durable: Mutex<Frontier>,
    pub(crate) live: AtomicU64,
    /// Set when writes stopped; see [`StoreError::Halted`].
    pub(crate) halted: Mutex<Option<Halt>>,
    pub(crate) marker: Mutex<Marker>,
    /// The covered count the marker held when the store was opened, when
    /// the database came up with fewer.
    pub(crate) lost_at_open: Option<(u64, u64)>,
    /// Records lost under ids the store still covers, found by
    /// [`Store::rebuild_digests`], less those restored since. Persisted.
    pub(crate) lost_records: AtomicU64,
    /// The highest stamp of a record this node made (0: none). Persisted.
    pub(crate) last_stamp: AtomicU64,
}

/// Why writes stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HaltKind {
    /// The disk is nearly full; sled was stopped before it failed.
    LowSpace,
    /// A write failed in sled, which then refuses everything until reopened.
    Failed,
}

/// Writes stopped, and why.
#[derive(Clone, Debug)]
pub(crate) struct Halt {
    pub(crate) reason: String,
    pub(crate) kind: HaltKind,
}

/// Bytes free on the file system holding `dir`, for an unprivileged writer.
pub(crate) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` is written by statvfs
    // before it is read, only when the call succeeds.
    let stat = unsafe {
        if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stat.assume_init()
    };
    // The field types are u32 on some targets.
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// One node's durable state in a sled data directory: records, the covered
/// frontier, the peer list and the node's identity.
///
/// Cloning is cheap (a reference count) and every method takes `&self`, so one
/// `Store` can be shared by threads. Methods block on disk I/O: call them from
/// `spawn_blocking` in async code.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// Acknowledged records that the database no longer holds: see
/// [`Store::damage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Ids the store covered durably at its last write before the open (the
    /// durability marker), or the ids it covers if the marker found no loss.
    pub covered_before: u64,
    /// Ids it covered when it was opened.
    pub covered_at_open: u64,
    /// Records lost under ids the store still covers (found when its records
    /// and digests disagreed), not yet sent back by peers.
    pub lost_under_cover: u64,
    /// Records missing now, of both kinds (peers send back what they hold).
    pub missing: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("node_id", &self.inner.node_id)
            .field("live", &self.live_count())
            .finish()
    }
}

impl Store {
    /// Acknowledged writes this database lost before it was opened (see
    /// [`Store::open`]), while any are still missing. Once peers have sent
    /// back as many ids as were lost, `None` again; a loss no peer can make
    /// good stays reported for the life of the process, and is found again at
    /// the next open (the marker keeps the count it had).
    pub fn damage(&self) -> Option<Damage> {
        let now = self.durable().ok()?.count();
        let (before, at_open) = self.inner.lost_at_open.unwrap_or((now, now));
        let lost = self.inner.lost_records.load(Ordering::Relaxed);
        let missing = before.saturating_sub(now).saturating_add(lost);
        (missing > 0).then_some(Damage {
            covered_before: before,
            covered_at_open: at_open,
            lost_under_cover: lost,
            missing,
        })
    }

    /// The open database, or [`StoreError::Halted`] while it is being replaced.
    pub(crate) fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        let guard = self.inner.trees.read().unwrap_or_else(|p| p.into_inner());
        guard
            .clone()
            .ok_or_else(|| StoreError::Halted("the database is being reopened".to_owned()))
    }

    /// The highest HLC stamp of any record made here (by [`Store::append_local`]),
    /// in any process lifetime.
    pub fn last_local_stamp(&self) -> Option<veto_core::Hlc> {
        let raw = self.inner.last_stamp.load(Ordering::Relaxed);
        (raw > 0).then_some(veto_core::Hlc(raw))
    }

    /// Why writes are halted, if they are.
    pub fn halted(&self) -> Option<String> {
        self.halt_state().map(|h| h.reason)
    }

    pub(crate) fn halt_state(&self) -> Option<Halt> {
        self.inner
            .halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refuses writes while the disk has less than
    /// [`OpenOptions::min_free_bytes`] free, before sled runs into a full disk
    /// (after which it refuses everything until reopened).
    pub(crate) fn check_space(&self) -> Result<(), StoreError> {
        let min = self.inner.opts.min_free_bytes;
        if min == 0 {
            return Ok(());
        }
        match free_bytes(&self.inner.path) {
            Ok(free) if free < min => Err(self.halt_as(
                format!("the disk is nearly full ({free} bytes free; writes need {min})"),
                HaltKind::LowSpace,
            )),
            // Not knowing is not a reason to refuse: sled will say.
            _ => Ok(()),
        }
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// This node's permanent id, made at random on first open and kept.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// The covered frontier as known to be on disk: every id whose record is
    /// stored or was pruned, as of the last completed flush. This is what the
    /// node may advertise to peers.
    pub fn covered(&self) -> Result<Frontier, StoreError> {
        Ok(self.durable()?.clone())
    }

    /// The digest of the live records, kept on disk beside them.
    pub fn digest(&self) -> Result<SetDigest, StoreError> {
        Ok(self.state()?.digest)
    }

    /// The number of live (stored, not pruned) records.
    pub fn live_count(&self) -> u64 {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// Flushes every write made so far to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (trees, snapshot) = {
            let state = self.write_state()?;
            (self.trees()?, state.frontier.clone())
        };
        self.flush_then_publish(&trees, &snapshot)
    }

    /// A small persisted setting, by name.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .trees()?
            .meta
            .get(setting_key(name))?
            .map(|v| v.to_vec()))
    }

    /// Stores a small setting durably.
    pub fn put_setting(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        self.trees()?.meta.insert(setting_key(name), value)?;
        self.flush()
    }

    /// Reads a chunk of the `records` tree, for a point read.
    pub(crate) fn read_chunk(&self, key: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        let trees = self.trees()?;
        let value = trees.records.get(key)?;
        if value.is_some() {
            touch(&trees.records, key)?;
        }
        Ok(value)
    }

    /// Reports a chunk just read as accessed a few more times.
    ///
    /// sled 0.34 queues page accesses for its LRU in 256 shards and accounts for
    /// a shard's queue, evicting down to `cache_capacity`, only once it holds 64
    /// accesses. A scan reads each page once, so up to 16,384 pages (several GiB
    /// of chunk-sized pages) stay resident before anything is evicted, and
    /// memory grows with the data read instead of staying within the cache
    /// bound. Re-reading the key (a cached lookup, well under a microsecond or
    /// two) makes the queues fill in step with the pages read. Measured at 3M
    /// records: a full scan leaves RSS at about 90 MiB with this, 450 MiB
    /// without.
    pub(crate) fn touch(&self, key: &[u8]) -> Result<(), StoreError> {
        touch(&self.trees()?.records, key)
    }

    /// Refuses once the store has halted.
    pub(crate) fn writable(&self) -> Result<(), StoreError> {
        match self.halted() {
            Some(reason) => Err(StoreError::Halted(reason)),
            None => Ok(()),
        }
    }

    /// Locks the writers' state, refusing once the store has halted.
    pub(crate) fn write_state(&self) -> Result<MutexGuard<'_, WriteState>, StoreError> {
        self.writable()?;
        self.state()
    }

    /// Locks the writers' state for reading.
    pub(crate) fn state(&self) -> Result<MutexGuard<'_, WriteState>, StoreError> {
        self.inner
            .write
            .lock()
            .map_err(|_| self.halt("a panic during a write".to_owned()))
    }

    pub(crate) fn durable(&self) -> Result<MutexGuard<'_, Frontier>, StoreError> {
        self.inner
            .durable
            .lock()
            .map_err(|_| self.halt("a panic during a write".to_owned()))
    }

    /// Stops all further writes. The in-memory frontier and digest already
    /// include a write whose fate on disk is unknown, so carrying on could
    /// acknowledge records that a restart would not find.
    pub(crate) fn halt(&self, reason: String) -> StoreError {
        self.halt_as(reason, HaltKind::Failed)
    }

    pub(crate) fn halt_as(&self, reason: String, kind: HaltKind) -> StoreError {
        let mut halted = self.inner.halted.lock().unwrap_or_else(|p| p.into_inner());
        if halted
            .as_ref()
            .is_some_and(|h| h.kind == HaltKind::LowSpace)
            && kind == HaltKind::Failed
        {
            // A failure outranks a warning: recovery must reopen.
            *halted = None;
        }
        if halted.is_none() {
            *halted = Some(Halt {
                reason: reason.clone(),
                kind,
            });
            metrics::gauge!("veto_store_writes_halted").set(1.0);
            metrics::counter!("veto_store_halts_total").increment(1);
            tracing::error!(%reason, dir = %self.inner.path.display(), "store halted: writes refused until the disk works again");
        }
        StoreError::Halted(reason)
    }

    /// Flushes, then adds `written` (a frontier taken after the writes to make
    /// durable were applied) to the durable frontier. Concurrent writers flush
    /// outside the write lock, so their flushes can share one fsync.
    ///
    /// `trees` is the database the writes went to: if the store was reopened
    /// since, they may not be in the new one, and nothing is published.
    pub(crate) fn flush_then_publish(
        &self,
        trees: &Arc<Trees>,
        written: &Frontier,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        if let Err(e) = trees.db.flush() {
            self.halt(format!("a failed flush ({e})"));
            return Err(StoreError::Storage(e));
        }
        if !Arc::ptr_eq(trees, &self.trees()?) {
            return Err(StoreError::Halted(
                "the database was reopened before this write was flushed".to_owned(),
            ));
        }
        metrics::histogram!("veto_store_flush_seconds").record(started.elapsed().as_secs_f64());
        let covered = {
            let mut durable = self.durable()?;
            durable.union_with(written);
            durable.count()
        };
        self.inner
            .marker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .raise(covered);
        Ok(())
    }

    /// Whether every id is in the durable frontier.
    pub(crate) fn all_durable(&self, ids: &[veto_core::RecordId]) -> Result<bool, StoreError> {
        let durable = self.durable()?;
        Ok(ids.iter().all(|id| durable.contains(*id)))
    }

    pub(crate) fn set_live(&self, live: u64) {
        self.inner.live.store(live, Ordering::Relaxed);
        metrics::gauge!("veto_store_records").set(live as f64);
    }
}

/// See [`Store::touch`].
pub(crate) fn touch(records: &sled::Tree, key: &[u8]) -> Result<(), StoreError> {
    for _ in 0..LRU_TOUCHES {
        records.get(key)?;
    }
    Ok(())
}

fn setting_key(name: &str) -> Vec<u8> {
    let mut k = SETTING_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

// The HTTP layer shares one store between blocking tasks.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Store>();
};

pub(crate) fn encode_frontier(f: &Frontier) -> Result<Vec<u8>, StoreError> {
    encode_meta("covered frontier", f)
}

pub(crate) fn encode_digest(d: &SetDigest) -> Result<Vec<u8>, StoreError> {
    encode_meta("set digest", d)
}

pub(crate) fn encode_origin_digests(
    d: &BTreeMap<NodeId, SetDigest>,
) -> Result<Vec<u8>, StoreError> {
    encode_meta("per-origin digests", d)
}
