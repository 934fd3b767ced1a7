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
//! # Format (version 1, integers little-endian)
//!
//! ```text
//! magic "VETOIDX1" | version u32 | node_id u64
//! covered_len u32 | covered (bincode, as the meta tree keeps it)
//! digest_len u32  | digest (bincode)
//! blocks: tag u8 = 1 | origin u64 | map u8 | iss u64 | n u32 | n × (seq u64, key u64[, before u64 if a cutoff map])
//!         tag u8 = 2 | n u32 | n × (origin u64, seq u64)     records with no index key (scope `peer`)
//! end:    tag u8 = 0 | keys u64 | others u64 | crc32 u32 of everything before it
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use veto_core::{Frontier, IndexKey, IndexMap, NodeId, RecordId, SetDigest};

use crate::chunk::{be_u64, chunk_key_of, ChunkRef};
use crate::codec::{corrupt, decode_meta, decode_target, encode_meta};
use crate::store::{touch, TREE_META, TREE_PRUNED_LOG};
use crate::{Store, StoreError};

const MAGIC: &[u8; 8] = b"VETOIDX1";
const VERSION: u32 = 1;
const TAG_END: u8 = 0;
const TAG_KEYS: u8 = 1;
const TAG_OTHERS: u8 = 2;
/// Keys per block at most, so that a block's count is never near `u32::MAX`.
const MAX_BLOCK: u32 = 1 << 20;

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
        // The log of prunes belongs to the old checkpoint: drop both before
        // the scan (a crash from here on leaves no checkpoint: a full scan).
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        self.trees()?.pruned_log.clear().map_err(StoreError::from)?;
        // Everything the checkpoint holds, and the emptied log, are on disk
        // before the file exists.
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
        let mut out = Encoder::new(BufWriter::with_capacity(1 << 20, file));
        out.bytes(MAGIC);
        out.u32(VERSION);
        out.u64(self.node_id().get());
        out.blob(&encode_meta("covered frontier", &covered)?);
        out.blob(&encode_meta("set digest", &digest)?);

        let mut block = Block::default();
        let mut others = Vec::new();
        let mut counted: std::collections::BTreeMap<NodeId, u64> = Default::default();
        let trees = self.trees()?;
        for entry in trees.records.iter() {
            let (key, value) = entry.map_err(StoreError::from)?;
            touch(&trees.records, &key)?;
            let chunk = ChunkRef::parse(&key, &value)?;
            for slot in chunk.slots() {
                let id = chunk.id(slot);
                // Stored after the checkpoint's start: the restart reads it
                // from the store, as it does every id outside `covered`.
                if !covered.contains(id) {
                    continue;
                }
                *counted.entry(id.origin).or_default() += 1;
                match IndexKey::of(&decode_target(id, chunk.bytes(slot))?) {
                    Some(k) => block.push(&mut out, id, k),
                    None => others.push(id),
                }
            }
        }
        block.finish(&mut out);
        // The scan must have found exactly the records the digest counts.
        let expected: std::collections::BTreeMap<NodeId, u64> = per_origin
            .iter()
            .map(|(o, d)| (*o, d.count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        if counted != expected {
            let found: u64 = counted.values().sum();
            let _ = std::fs::remove_file(&tmp);
            return Err(CheckpointError::Inconsistent(format!(
                "a scan found {found} records where the digests count {}",
                digest.count()
            )));
        }
        out.u8(TAG_OTHERS);
        out.u32(u32::try_from(others.len()).unwrap_or(u32::MAX));
        for id in &others {
            out.u64(id.origin.get());
            out.u64(id.seq);
        }
        out.u8(TAG_END);
        out.u64(block.total);
        out.u64(others.len() as u64);
        let bytes = out.finish().map_err(io)?;
        let file = bytes.1.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io)?;
        File::open(self.path())
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        Ok(CheckpointStats {
            digest,
            records: block.total + others.len() as u64,
            bytes: bytes.0,
        })
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
        decode(&data, self.node_id(), on_key)
            .map(Some)
            .map_err(|detail| CheckpointError::Format { path, detail })
    }

    /// Calls `f` with every record pruned since the last checkpoint was
    /// started (they are in it, and no longer in the store).
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

/// Keys of consecutive records that share an origin, map and issuer.
#[derive(Default)]
struct Block {
    head: Option<(NodeId, IndexMap, u64)>,
    entries: Vec<(u64, IndexKey)>,
    total: u64,
}

impl Block {
    fn push<W: Write>(&mut self, out: &mut Encoder<W>, id: RecordId, key: IndexKey) {
        let head = (id.origin, key.map, key.iss);
        if self.head != Some(head) || self.entries.len() as u32 >= MAX_BLOCK {
            self.finish(out);
            self.head = Some(head);
        }
        self.entries.push((id.seq, key));
        self.total += 1;
    }

    fn finish<W: Write>(&mut self, out: &mut Encoder<W>) {
        let Some((origin, map, iss)) = self.head.take() else {
            return;
        };
        out.u8(TAG_KEYS);
        out.u64(origin.get());
        out.u8(map.number());
        out.u64(iss);
        out.u32(self.entries.len() as u32);
        for (seq, key) in self.entries.drain(..) {
            out.u64(seq);
            out.u64(key.key);
            if map.is_bulk() {
                out.u64(key.before);
            }
        }
    }
}

/// Writes little-endian integers, keeping the CRC and the first I/O error.
struct Encoder<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    len: u64,
    error: Option<std::io::Error>,
}

impl<W: Write> Encoder<W> {
    fn new(out: W) -> Self {
        Encoder {
            out,
            crc: crc32fast::Hasher::new(),
            len: 0,
            error: None,
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        if self.error.is_none() {
            self.crc.update(b);
            self.len += b.len() as u64;
            if let Err(e) = self.out.write_all(b) {
                self.error = Some(e);
            }
        }
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    fn blob(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.bytes(b);
    }

    /// Appends the CRC and returns the length written and the writer.
    fn finish(mut self) -> std::io::Result<(u64, W)> {
        let crc = self.crc.clone().finalize();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.write_all(&crc.to_le_bytes())?;
        Ok((self.len + 4, self.out))
    }
}

/// Reads little-endian integers from a checked buffer.
struct Decoder<'a> {
    data: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    /// A count of items of `size` bytes each, refused if the rest of the
    /// buffer cannot hold them (so nothing huge is allocated for a bad count).
    fn count(&mut self, size: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(size) > self.data.len() {
            return Err(format!("a count of {n} runs past the end"));
        }
        Ok(n)
    }
}

/// Decodes a whole checkpoint file of the store `node`.
fn decode(
    data: &[u8],
    node: NodeId,
    mut on_key: impl FnMut(RecordId, IndexKey),
) -> Result<Checkpoint, String> {
    if data.len() < MAGIC.len() + 4 || &data[..MAGIC.len()] != MAGIC {
        return Err("not a veto index checkpoint".into());
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let mut want = [0u8; 4];
    want.copy_from_slice(crc);
    if crc32fast::hash(body) != u32::from_le_bytes(want) {
        return Err("checksum mismatch (torn or damaged file)".into());
    }
    let mut d = Decoder {
        data: &body[MAGIC.len()..],
    };
    let version = d.u32()?;
    if version != VERSION {
        return Err(format!("version {version}; this veto reads {VERSION}"));
    }
    let of = d.u64()?;
    if of != node.get() {
        return Err(format!(
            "it was written by node {} , not this data dir's {}",
            NodeId::new(of),
            node
        ));
    }
    let n = d.count(1)?;
    let covered: Frontier =
        decode_meta(TREE_META, b"checkpoint covered", d.take(n)?).map_err(|e| e.to_string())?;
    let n = d.count(1)?;
    let digest: SetDigest =
        decode_meta(TREE_META, b"checkpoint digest", d.take(n)?).map_err(|e| e.to_string())?;
    let mut keys = 0u64;
    let mut others = Vec::new();
    loop {
        match d.u8()? {
            TAG_KEYS => {
                let origin = NodeId::new(d.u64()?);
                let map = IndexMap::from_number(d.u8()?).ok_or("an unknown index map")?;
                let iss = d.u64()?;
                let n = d.count(if map.is_bulk() { 24 } else { 16 })?;
                for _ in 0..n {
                    let seq = d.u64()?;
                    let key = d.u64()?;
                    let before = if map.is_bulk() { d.u64()? } else { 0 };
                    keys += 1;
                    on_key(
                        RecordId { origin, seq },
                        IndexKey {
                            map,
                            key,
                            iss,
                            before,
                        },
                    );
                }
            }
            TAG_OTHERS => {
                let n = d.count(16)?;
                for _ in 0..n {
                    let origin = NodeId::new(d.u64()?);
                    others.push(RecordId {
                        origin,
                        seq: d.u64()?,
                    });
                }
            }
            TAG_END => {
                let (n_keys, n_others) = (d.u64()?, d.u64()?);
                if n_keys != keys || n_others != others.len() as u64 {
                    return Err("its counts disagree with its contents".into());
                }
                if !d.data.is_empty() {
                    return Err(format!("{} bytes after its end", d.data.len()));
                }
                return Ok(Checkpoint {
                    covered,
                    digest,
                    keys,
                    others,
                });
            }
            tag => return Err(format!("unknown block tag {tag}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(node: u64) -> Vec<u8> {
        let mut out = Encoder::new(Vec::new());
        out.bytes(MAGIC);
        out.u32(VERSION);
        out.u64(node);
        let mut covered = Frontier::new();
        covered.insert_range(NodeId::new(5), 1..=3);
        out.blob(&encode_meta("f", &covered).unwrap());
        out.blob(&encode_meta("d", &SetDigest::new()).unwrap());
        let mut block = Block::default();
        for (seq, map) in [
            (1, IndexMap::Tokens),
            (2, IndexMap::Tokens),
            (3, IndexMap::Subjects),
        ] {
            let key = IndexKey {
                map,
                key: seq * 11,
                iss: 7,
                before: seq * 100,
            };
            block.push(
                &mut out,
                RecordId {
                    origin: NodeId::new(5),
                    seq,
                },
                key,
            );
        }
        block.finish(&mut out);
        out.u8(TAG_OTHERS);
        out.u32(1);
        out.u64(5);
        out.u64(4);
        out.u8(TAG_END);
        out.u64(3);
        out.u64(1);
        out.finish().unwrap().1
    }

    #[test]
    fn a_checkpoint_reads_back_what_was_written() {
        let mut keys = Vec::new();
        let c = decode(&encoded(9), NodeId::new(9), |id, k| keys.push((id, k))).unwrap();
        assert_eq!(c.keys, 3);
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[2].1.map, IndexMap::Subjects);
        assert_eq!(keys[2].1.before, 300);
        // An exact key carries no `before`.
        assert_eq!(keys[0].1.before, 0);
        assert_eq!(
            c.others,
            vec![RecordId {
                origin: NodeId::new(5),
                seq: 4
            }]
        );
        assert!(c.covered.contains(RecordId {
            origin: NodeId::new(5),
            seq: 3
        }));
    }

    #[test]
    fn every_damage_is_refused() {
        let good = encoded(9);
        // Another data dir's file.
        assert!(decode(&good, NodeId::new(8), |_, _| {})
            .unwrap_err()
            .contains("not this data dir"));
        // Every truncation, and every flipped byte.
        for n in 0..good.len() {
            assert!(
                decode(&good[..n], NodeId::new(9), |_, _| {}).is_err(),
                "prefix {n}"
            );
            let mut bad = good.clone();
            bad[n] ^= 0x20;
            assert!(decode(&bad, NodeId::new(9), |_, _| {}).is_err(), "byte {n}");
        }
    }
}
