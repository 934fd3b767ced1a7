//! Opening a data directory, and opening it again after a failed write.

use std::collections::BTreeMap;
use std::io;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use veto_core::{Frontier, NodeId, SetDigest};

use crate::codec::decode_meta;
use crate::error::{OpenError, StoreError};
use crate::marker::{self, Marker, MarkerRead};
use crate::store::{
    free_bytes, HaltKind, Inner, OpenOptions, Store, Trees, WriteState, FORMAT_VERSION, KEY_DIGEST,
    KEY_FORMAT, KEY_FRONTIER, KEY_LAST_STAMP, KEY_LOST_RECORDS, KEY_NODE_ID, KEY_ORIGIN_DIGESTS,
    TREE_BY_EXPIRY, TREE_BY_HLC, TREE_META, TREE_PEERS, TREE_PRUNED_LOG, TREE_RECORDS,
};

/// How long [`Store::recover`] waits for the failed database's last handles
/// to go before opening it again.
const RECOVER_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Bytes [`Store::recover`] writes and syncs to see whether the disk takes
/// writes again.
const RECOVER_PROBE_BYTES: usize = 256 * 1024;

fn open_error(path: &Path, e: sled::Error) -> OpenError {
    let path = path.to_path_buf();
    match e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            OpenError::Locked { path }
        }
        sled::Error::Io(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            OpenError::NotWritable { path, source: io }
        }
        sled::Error::Corruption { at, .. } => OpenError::Corrupt {
            path,
            detail: match at {
                Some(at) => format!("sled found a damaged entry at {at}"),
                None => "sled found damaged data".to_owned(),
            },
        },
        other => OpenError::Storage {
            path,
            detail: other.to_string(),
        },
    }
}

fn store_to_open(path: &Path, e: StoreError) -> OpenError {
    match e {
        StoreError::Corrupt { .. } => OpenError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        StoreError::Storage(e) => open_error(path, e),
        other => OpenError::Storage {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// Opens sled, waiting up to `lock_wait` for the directory lock. sled's
/// background threads release the lock shortly after the last handle of a
/// previous open is dropped, so an immediate reopen in the same process would
/// otherwise fail now and then.
fn open_db(dir: &Path, opts: &OpenOptions, lock_wait: Duration) -> Result<sled::Db, OpenError> {
    let deadline = Instant::now() + lock_wait;
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_capacity_bytes)
            .flush_every_ms(opts.background_flush_ms)
            .open()
            .map_err(|e| open_error(dir, e));
        match opened {
            Err(OpenError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Fails early, with the OS's own words, when the directory cannot hold files:
/// sled's error for the same cause names an internal file instead.
fn probe_writable(dir: &Path) -> Result<(), OpenError> {
    probe(dir, 0).map_err(|source| OpenError::NotWritable {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `len` bytes to a probe file and syncs it: whether the disk takes
/// writes now.
fn probe(dir: &Path, len: usize) -> io::Result<()> {
    use std::io::Write as _;
    let path = dir.join(".veto-write-probe");
    let result = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&vec![0u8; len])?;
        f.sync_all()
    });
    // A leftover probe file is harmless, so failing to remove it is not an error.
    let _ = std::fs::remove_file(&path);
    result
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

/// Opens the database and its trees and reads the node id and the writers'
/// state. sled panics on some kinds of damage; that is caught and reported as
/// corruption, with sled's words.
fn open_trees(
    dir: &Path,
    opts: &OpenOptions,
    lock_wait: Duration,
) -> Result<(Trees, NodeId, WriteState), OpenError> {
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let db = open_db(dir, opts, lock_wait)?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| open_error(dir, e));
        let trees = Trees {
            records: tree(TREE_RECORDS)?,
            by_hlc: tree(TREE_BY_HLC)?,
            by_expiry: tree(TREE_BY_EXPIRY)?,
            meta: tree(TREE_META)?,
            peers: tree(TREE_PEERS)?,
            pruned_log: tree(TREE_PRUNED_LOG)?,
            db: db.clone(),
        };
        let node_id = init_meta(dir, &trees.db, &trees.meta)?;
        let state = read_state(dir, &trees)?;
        Ok((trees, node_id, state))
    }));
    opened.unwrap_or_else(|payload| {
        Err(OpenError::Corrupt {
            path: dir.to_path_buf(),
            detail: format!(
                "sled failed while reading its files ({})",
                panic_text(payload.as_ref())
            ),
        })
    })
}

/// Reads a big-endian u64 kept in the meta tree (0 if absent).
fn read_u64(dir: &Path, trees: &Trees, key: &[u8]) -> Result<u64, OpenError> {
    let value = trees.meta.get(key).map_err(|e| open_error(dir, e))?;
    match value {
        None => Ok(0),
        Some(v) => <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| OpenError::Corrupt {
                path: dir.to_path_buf(),
                detail: format!(
                    "meta entry `{}` is not 8 bytes",
                    String::from_utf8_lossy(key)
                ),
            }),
    }
}

/// Reads the persisted frontier and digests. Per-origin digests missing (a
/// data directory from before they were kept) are computed from the records.
fn read_state(dir: &Path, trees: &Trees) -> Result<WriteState, OpenError> {
    let load = |key: &[u8]| -> Result<Option<sled::IVec>, OpenError> {
        trees.meta.get(key).map_err(|e| open_error(dir, e))
    };
    let frontier: Frontier = match load(KEY_FRONTIER)? {
        Some(v) => decode_meta(TREE_META, KEY_FRONTIER, &v).map_err(|e| store_to_open(dir, e))?,
        None => Frontier::new(),
    };
    let digest: SetDigest = match load(KEY_DIGEST)? {
        Some(v) => decode_meta(TREE_META, KEY_DIGEST, &v).map_err(|e| store_to_open(dir, e))?,
        None => SetDigest::new(),
    };
    let per_origin: BTreeMap<NodeId, SetDigest> = match load(KEY_ORIGIN_DIGESTS)? {
        Some(v) => {
            decode_meta(TREE_META, KEY_ORIGIN_DIGESTS, &v).map_err(|e| store_to_open(dir, e))?
        }
        None => crate::read::origin_digests(&trees.records).map_err(|e| store_to_open(dir, e))?,
    };
    Ok(WriteState {
        frontier,
        digest,
        per_origin,
    })
}

/// Checks the format version and reads the node id, writing both (durably) on
/// first open.
fn init_meta(dir: &Path, db: &sled::Db, meta: &sled::Tree) -> Result<NodeId, OpenError> {
    let corrupt = |detail: String| OpenError::Corrupt {
        path: dir.to_path_buf(),
        detail,
    };
    let format = meta.get(KEY_FORMAT).map_err(|e| open_error(dir, e))?;
    let node = meta.get(KEY_NODE_ID).map_err(|e| open_error(dir, e))?;
    match (format, node) {
        (Some(format), Some(node)) => {
            let found = <[u8; 4]>::try_from(format.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| corrupt("meta entry `format` is not 4 bytes".to_owned()))?;
            if found != FORMAT_VERSION {
                return Err(OpenError::UnsupportedFormat {
                    path: dir.to_path_buf(),
                    found,
                    expected: FORMAT_VERSION,
                });
            }
            let raw = <[u8; 8]>::try_from(node.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("meta entry `node_id` is not 8 bytes".to_owned()))?;
            if raw == 0 {
                return Err(corrupt("meta entry `node_id` is zero".to_owned()));
            }
            Ok(NodeId::new(raw))
        }
        (None, None) => {
            let node_id = NodeId::new(rand::random::<u64>());
            let mut batch = sled::Batch::default();
            batch.insert(KEY_FORMAT, &FORMAT_VERSION.to_be_bytes());
            batch.insert(KEY_NODE_ID, &node_id.get().to_be_bytes());
            meta.apply_batch(batch).map_err(|e| open_error(dir, e))?;
            db.flush().map_err(|e| open_error(dir, e))?;
            tracing::info!(node_id = %node_id, "created a new node identity");
            Ok(node_id)
        }
        _ => Err(corrupt(
            "meta holds only one of `format` and `node_id`".to_owned(),
        )),
    }
}

impl Store {
    /// Opens the data directory `dir`, creating it (and this node's identity) on
    /// first use.
    ///
    /// Damage is reported, never served silently: a database sled cannot read
    /// (or panics on) is [`OpenError::Corrupt`]; a database that reads but
    /// covers fewer ids than the durability marker recorded at its last write
    /// opens, logs an error, and reports the loss in [`Store::damage`].
    pub fn open(dir: &Path, opts: OpenOptions) -> Result<Store, OpenError> {
        let _span = tracing::info_span!("store.open", dir = %dir.display()).entered();
        let started = Instant::now();
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        probe_writable(dir)?;
        let (trees, node_id, state) = open_trees(dir, &opts, opts.lock_wait)?;
        let covered = state.frontier.count();
        let (high, lost_at_open) = match marker::read(dir) {
            MarkerRead::Absent => (covered, None),
            MarkerRead::Covered(marked) if marked > covered => {
                tracing::error!(
                    dir = %dir.display(),
                    covered_before = marked,
                    covered_now = covered,
                    missing = marked - covered,
                    "DATA LOSS: the database holds fewer records than it had acknowledged \
                     (a damaged or truncated file, or the database restored without its \
                     durability marker); serving what is left and taking back from peers \
                     what they hold"
                );
                (marked, Some((marked, covered)))
            }
            MarkerRead::Covered(marked) => (marked.max(covered), None),
            MarkerRead::Damaged(why) => {
                tracing::error!(dir = %dir.display(), %why, "the durability marker is damaged; \
                    a loss of recent writes before this start cannot be ruled out; starting a new marker");
                (covered, None)
            }
        };
        let marker = Marker::open(dir, high).map_err(|source| OpenError::NotWritable {
            path: dir.to_path_buf(),
            source,
        })?;
        let lost_records = read_u64(dir, &trees, KEY_LOST_RECORDS)?;
        let last_stamp = read_u64(dir, &trees, KEY_LAST_STAMP)?;
        let live = state.digest.count();
        metrics::gauge!("veto_store_records").set(live as f64);
        tracing::info!(
            node_id = %node_id,
            live,
            covered,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store opened"
        );
        Ok(Store {
            inner: Arc::new(Inner {
                path: dir.to_path_buf(),
                opts,
                node_id,
                trees: RwLock::new(Some(Arc::new(trees))),
                durable: Mutex::new(state.frontier.clone()),
                write: Mutex::new(state),
                live: AtomicU64::new(live),
                halted: Mutex::new(None),
                marker: Mutex::new(marker),
                lost_at_open,
                lost_records: AtomicU64::new(lost_records),
                last_stamp: AtomicU64::new(last_stamp),
            }),
        })
    }

    /// After a failed write: checks that the disk takes writes again, reopens
    /// the database (sled refuses every operation after an I/O error), reloads
    /// the frontier and digests from what is on disk, and lifts the halt.
    /// Returns `Ok(true)` if writes resumed, `Ok(false)` if nothing was halted,
    /// and the error that still stands otherwise (try again later).
    ///
    /// What reached the disk of the write that failed is on disk now and
    /// counts; its caller was told it failed, so nothing was acknowledged
    /// that is not there. Callers holding copies of the store's state (an
    /// index, a sequence counter) must reload them after `Ok(true)`.
    pub fn recover(&self) -> Result<bool, StoreError> {
        let Some(halt) = self.halt_state() else {
            return Ok(false);
        };
        let reason = halt.reason;
        let dir = self.inner.path.clone();
        if halt.kind == HaltKind::LowSpace {
            let min = self.inner.opts.min_free_bytes;
            return match free_bytes(&dir) {
                Ok(free) if free >= min => {
                    self.lift_halt(&reason);
                    Ok(true)
                }
                Ok(free) => Err(StoreError::Halted(format!(
                    "the disk is still nearly full ({free} bytes free; writes need {min})"
                ))),
                Err(e) => Err(StoreError::Halted(format!(
                    "{reason}; cannot read the free space: {e}"
                ))),
            };
        }
        probe(&dir, RECOVER_PROBE_BYTES)
            .map_err(|e| StoreError::Halted(format!("{reason}; the disk still fails: {e}")))?;
        let mut state = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut trees = self.inner.trees.write().unwrap_or_else(|p| p.into_inner());
        // sled's file lock goes with the last handle. Closing a database that
        // failed can hang in sled, so it is closed on a thread of its own, and
        // the lock is waited for.
        let old = trees.take();
        let _ = std::thread::Builder::new()
            .name("veto-close-failed-db".into())
            .spawn(move || drop(old));
        let reopened = open_trees(&dir, &self.inner.opts, RECOVER_LOCK_WAIT);
        let (new, _, fresh) = match reopened {
            Ok(opened) => opened,
            Err(OpenError::Locked { .. }) => {
                return Err(StoreError::Wedged(format!(
                    "{reason}; its lock was still held after {RECOVER_LOCK_WAIT:?}"
                )))
            }
            Err(e) => {
                return Err(StoreError::Halted(format!(
                    "{reason}; reopening the database failed: {e}"
                )))
            }
        };
        *trees = Some(Arc::new(new));
        drop(trees);
        *self.durable()? = fresh.frontier.clone();
        self.set_live(fresh.digest.count());
        *state = fresh;
        drop(state);
        self.lift_halt(&reason);
        Ok(true)
    }

    fn lift_halt(&self, reason: &str) {
        *self.inner.halted.lock().unwrap_or_else(|p| p.into_inner()) = None;
        metrics::gauge!("veto_store_writes_halted").set(0.0);
        tracing::info!(dir = %self.inner.path.display(), after = %reason, "store recovered: writes resume");
    }
}
