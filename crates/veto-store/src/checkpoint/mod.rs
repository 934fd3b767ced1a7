//! A checkpoint of the lookup index: every stored record's digested index key
//! ([`IndexKey`]), in a file beside the database, so that a restart inserts
//! ten million keys instead of reading ten million records out of sled.
//!
//! A checkpoint describes the records whose ids the store covered when it was
//! taken (`covered`), with the store's digest of them (`digest`). What changed
//! since is found without a scan: records stored since have ids outside
//! `covered`, and records pruned since are kept, until the next checkpoint, in
//! the `pruned_log` tree, written in the same transaction as the prune. The
//! node adds the first and removes the second, and then compares the digest it
//! arrives at with the store's: only if they are equal is the checkpoint used
//! (otherwise the node reads every record, as without one). The file carries
//! the store's node id and a CRC-32, so a file from another data dir, a torn
//! write or a flipped bit is refused, never half-applied.
//!
//! Prunes are logged per checkpoint *epoch*: the file carries the epoch it
//! was written at, and the `meta` tree the epoch whose prunes the log holds.
//! A new checkpoint is written beside the old one, which stays valid with
//! its log until the new file is renamed over it; only then is the log
//! retired. A crash at any point of a write leaves either the old checkpoint
//! and its log, or the new one (and a log one epoch behind it, which holds
//! nothing the new one needs and is retired on the next read).
//!
//! The file's layout is in the `format` module.

mod format;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use veto_core::{Frontier, IndexKey, NodeId, RecordId, SetDigest};

use crate::chunk::{be_u64, chunk_key_of};
use crate::codec::corrupt;
use crate::store::{KEY_PRUNED_LOG_EPOCH, TREE_META, TREE_PRUNED_LOG};
use crate::{Store, StoreError};
use format::{Header, Writer};

/// Where a new checkpoint's keys come from.
enum Source {
    /// A scan of every stored record.
    Scan,
    /// The last checkpoint and the changes since.
    Previous,
}

/// The checkpoint's file name inside the data dir.
pub const CHECKPOINT_FILE: &str = "index.checkpoint";

/// Why a checkpoint cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint this version reads, or is damaged.
    #[error("checkpoint file {path} is unusable: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The store changed under the scan, or a scan found other records than
    /// the store's digest counts: no checkpoint is written.
    #[error("no checkpoint written: {0}")]
    Inconsistent(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A checkpoint read back, but for its keys (handed to the reader's callback
/// one by one, so that ten million of them are never held twice).
#[derive(Debug)]
pub struct Checkpoint {
    /// The epoch it was written at: the log of prunes since it is the one of
    /// this epoch.
    pub epoch: u64,
    /// The ids the store covered when it was taken.
    pub covered: Frontier,
    /// The store's digest of the records it holds.
    pub digest: SetDigest,
    /// How many indexed records it holds.
    pub keys: u64,
    /// Records it holds that have no index key (scope `peer`).
    pub others: Vec<RecordId>,
}

/// What writing a checkpoint did.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointStats {
    /// The store's digest it describes.
    pub digest: SetDigest,
    /// Records in it.
    pub records: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

impl Store {
    /// The checkpoint's path: `index.checkpoint` in the data dir.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path().join(CHECKPOINT_FILE)
    }

    /// Writes a checkpoint of every record the store holds now, replacing the
    /// last one atomically (written aside, synced, renamed). It reads every
    /// record's target, so it takes as long as a full scan; writes go on
    /// meanwhile, but the caller must not prune until it returns (the node
    /// runs both from its garbage-collection loop).
    pub fn write_checkpoint(&self) -> Result<CheckpointStats, CheckpointError> {
        self.checkpoint_from(Source::Scan)
    }

    /// Writes a checkpoint from the last one instead of from a scan: its
    /// keys, less the records pruned since (the log), plus the records
    /// stored since (read by id range). It costs about the file's size and
    /// the change, not a read of every record, so it can run far more often
    /// than [`Store::write_checkpoint`]; the same count check ends it. An
    /// error (no usable last checkpoint among them) leaves the last one as
    /// it was: the caller then writes one from a scan.
    pub fn update_checkpoint(&self) -> Result<CheckpointStats, CheckpointError> {
        self.checkpoint_from(Source::Previous)
    }

    fn checkpoint_from(&self, from: Source) -> Result<CheckpointStats, CheckpointError> {
        let epoch = self.pruned_log_epoch()? + 1;
        let stats = self.write_checkpoint_file(epoch, from)?;
        // The log's prunes all came before this checkpoint was started (no
        // prune runs during a write), so it needs none of them.
        self.retire_pruned_log(epoch)?;
        Ok(stats)
    }

    /// Every record `covered` holds, from a scan of the store.
    fn fill_from_scan<W: std::io::Write>(
        &self,
        out: &mut Writer<W>,
        covered: &Frontier,
    ) -> Result<(), CheckpointError> {
        Ok(self.for_each_target(|id, target| {
            // Stored after the checkpoint's start: the restart reads it
            // from the store, as it does every id outside `covered`.
            if covered.contains(id) {
                out.record(id, IndexKey::of(&target));
            }
        })?)
    }

    /// Every record `covered` holds, from the last checkpoint and the
    /// changes since.
    fn fill_from_previous<W: std::io::Write>(
        &self,
        out: &mut Writer<W>,
        covered: &Frontier,
    ) -> Result<(), CheckpointError> {
        let path = self.checkpoint_path();
        let data = std::fs::read(&path).map_err(|source| CheckpointError::Io {
            path: path.clone(),
            source,
        })?;
        let mut pruned = std::collections::HashSet::new();
        let trees = self.trees()?;
        for entry in trees.pruned_log.iter() {
            let (key, _) = entry.map_err(StoreError::from)?;
            pruned.insert(pruned_log_id(&key)?);
        }
        let last = format::decode(&data, self.node_id(), |id, key| {
            if !pruned.contains(&id) {
                out.record(id, Some(key));
            }
        })
        .map_err(|detail| CheckpointError::Format {
            path: path.clone(),
            detail,
        })?;
        // The log must be the last checkpoint's, or its prunes are not
        // the ones since it.
        let log = self.pruned_log_epoch()?;
        if last.epoch != log {
            return Err(CheckpointError::Inconsistent(format!(
                "the last checkpoint is of epoch {} and the log of prunes of epoch {log}",
                last.epoch
            )));
        }
        for id in last.others.iter().filter(|id| !pruned.contains(id)) {
            out.record(*id, None);
        }
        for (origin, ranges) in covered.missing_in(&last.covered) {
            for seqs in ranges {
                self.for_each_target_in(origin, seqs, |id, target| {
                    out.record(id, IndexKey::of(&target));
                })?;
            }
        }
        Ok(())
    }

    /// Writes the file of epoch `epoch` and renames it over the last one,
    /// which with its log stays valid until then.
    fn write_checkpoint_file(
        &self,
        epoch: u64,
        from: Source,
    ) -> Result<CheckpointStats, CheckpointError> {
        let path = self.checkpoint_path();
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        // What the checkpoint will describe: the ids covered now, and the
        // digest of the records they hold. Both are read under the write lock.
        let (covered, digest, per_origin) = {
            let state = self.write_state()?;
            (
                state.frontier.clone(),
                state.digest,
                state.per_origin.clone(),
            )
        };
        // Everything the checkpoint holds is on disk before the file exists.
        self.flush()?;

        let tmp = path.with_extension("checkpoint.tmp");
        // Like sled's files: readable by the node's user only.
        let file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?
        };
        let header = Header {
            node: self.node_id(),
            epoch,
            covered: &covered,
            digest: &digest,
        };
        let mut out = Writer::start(BufWriter::with_capacity(1 << 20, file), &header)?;
        let filled = match from {
            Source::Scan => self.fill_from_scan(&mut out, &covered),
            Source::Previous => self.fill_from_previous(&mut out, &covered),
        };
        // It must hold exactly the records the digests count.
        let checked = filled.and_then(|()| {
            let expected: std::collections::BTreeMap<NodeId, u64> = per_origin
                .iter()
                .map(|(o, d)| (*o, d.count()))
                .filter(|(_, n)| *n > 0)
                .collect();
            if *out.per_origin() == expected {
                return Ok(());
            }
            let found: u64 = out.per_origin().values().sum();
            Err(CheckpointError::Inconsistent(format!(
                "a scan found {found} records where the digests count {}",
                digest.count()
            )))
        });
        if let Err(e) = checked {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let (records, bytes, out) = out.finish().map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)?;
        File::open(self.path())
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        Ok(CheckpointStats {
            digest,
            records,
            bytes,
        })
    }

    /// Empties the log of prunes and makes it the log of epoch `epoch`. The
    /// log is emptied and synced before its epoch moves, so a crash in
    /// between leaves it one epoch behind the file, which the next read
    /// takes as retired; never an old entry under the new epoch.
    fn retire_pruned_log(&self, epoch: u64) -> Result<(), StoreError> {
        let trees = self.trees()?;
        trees.pruned_log.clear()?;
        self.flush()?;
        trees
            .meta
            .insert(KEY_PRUNED_LOG_EPOCH, &epoch.to_be_bytes())?;
        self.flush()
    }

    /// The epoch whose prunes the log holds: 0 before the first checkpoint.
    fn pruned_log_epoch(&self) -> Result<u64, StoreError> {
        match self.trees()?.meta.get(KEY_PRUNED_LOG_EPOCH)? {
            None => Ok(0),
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    corrupt(
                        TREE_META,
                        KEY_PRUNED_LOG_EPOCH,
                        format!("{} bytes, not 8", v.len()),
                    )
                }),
        }
    }

    /// Reads the checkpoint, if there is one, calling `on_key` with each
    /// indexed record's id and key. `Ok(None)`: there is none. A file that is
    /// damaged, truncated, of another version or of another data dir is an
    /// error; `on_key` may have been called before a structural error was
    /// found (the checksum is checked before any call), so on an error the
    /// caller drops whatever it built from the keys.
    pub fn read_checkpoint(
        &self,
        on_key: impl FnMut(RecordId, IndexKey),
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = self.checkpoint_path();
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        let checkpoint = format::decode(&data, self.node_id(), on_key).map_err(|detail| {
            CheckpointError::Format {
                path: path.clone(),
                detail,
            }
        })?;
        let log = self.pruned_log_epoch()?;
        if checkpoint.epoch == log + 1 {
            // A write that ended after its rename and before its log was
            // retired: finish it.
            self.retire_pruned_log(checkpoint.epoch)?;
        } else if checkpoint.epoch != log {
            return Err(CheckpointError::Format {
                path,
                detail: format!(
                    "it is of epoch {} and the log of prunes of epoch {log} \
                     (a file from another copy of this data dir)",
                    checkpoint.epoch
                ),
            });
        }
        Ok(Some(checkpoint))
    }

    /// Calls `f` with every record pruned since the last checkpoint was
    /// started (they are in it, and no longer in the store). Valid after
    /// [`Store::read_checkpoint`] has accepted that checkpoint.
    pub fn for_each_pruned_since_checkpoint(
        &self,
        mut f: impl FnMut(veto_core::Record),
    ) -> Result<(), StoreError> {
        let trees = self.trees()?;
        for entry in trees.pruned_log.iter() {
            let (key, value) = entry?;
            let id = pruned_log_id(&key)?;
            f(crate::codec::decode_record(id, &value)?);
        }
        Ok(())
    }
}

/// The key of a record in the `pruned_log` tree: a chunk key's layout,
/// origin BE then, here, the seq BE.
pub(crate) fn pruned_log_key(id: RecordId) -> [u8; 16] {
    chunk_key_of(id.origin, id.seq)
}

fn pruned_log_id(key: &[u8]) -> Result<RecordId, StoreError> {
    if key.len() != 16 {
        return Err(corrupt(
            TREE_PRUNED_LOG,
            key,
            format!("key is {} bytes, not 16", key.len()),
        ));
    }
    Ok(RecordId {
        origin: NodeId::new(be_u64(key, 0)),
        seq: be_u64(key, 8),
    })
}
