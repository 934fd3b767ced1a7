//! The checkpoint file's format: writing it as a stream, and decoding it
//! whole with every length, count and checksum checked.
//!
//! # Format (version 2, integers little-endian)
//!
//! ```text
//! magic "VETOIDX1" | version u32 | node_id u64 | epoch u64
//! covered_len u32 | covered (bincode, as the meta tree keeps it)
//! digest_len u32  | digest (bincode)
//! blocks: tag u8 = 1 | origin u64 | map u8 | iss u64 | n u32 | n × (seq u64, key u64[, before u64 if a cutoff map])
//!         tag u8 = 2 | n u32 | n × (origin u64, seq u64)     records with no index key (scope `peer`)
//! end:    tag u8 = 0 | keys u64 | others u64 | crc32 u32 of everything before it
//! ```
//!
//! Version 1 had no epoch; a version-1 file is refused, which costs one full
//! read of the store on the first start after an upgrade.

use std::collections::BTreeMap;
use std::io::Write;

use veto_core::{Frontier, IndexKey, IndexMap, NodeId, RecordId, SetDigest};

use super::Checkpoint;
use crate::codec::{decode_meta, encode_meta};
use crate::store::TREE_META;
use crate::StoreError;

const MAGIC: &[u8; 8] = b"VETOIDX1";
const VERSION: u32 = 2;
const TAG_END: u8 = 0;
const TAG_KEYS: u8 = 1;
const TAG_OTHERS: u8 = 2;
/// Keys per block at most, so that a block's count is never near `u32::MAX`.
const MAX_BLOCK: u32 = 1 << 20;

/// What a checkpoint says about itself before its keys.
pub(super) struct Header<'a> {
    pub(super) node: NodeId,
    pub(super) epoch: u64,
    pub(super) covered: &'a Frontier,
    pub(super) digest: &'a SetDigest,
}

/// Writes a checkpoint as a stream: the header, then every record's key as
/// the scan finds it, then the records without one and the checksum.
pub(super) struct Writer<W: Write> {
    out: Encoder<W>,
    block: Block,
    others: Vec<RecordId>,
    /// Records written, per origin.
    per_origin: BTreeMap<NodeId, u64>,
}

impl<W: Write> Writer<W> {
    pub(super) fn start(out: W, header: &Header<'_>) -> Result<Self, StoreError> {
        let mut out = Encoder::new(out);
        out.bytes(MAGIC);
        out.u32(VERSION);
        out.u64(header.node.get());
        out.u64(header.epoch);
        out.blob(&encode_meta("covered frontier", header.covered)?);
        out.blob(&encode_meta("set digest", header.digest)?);
        Ok(Writer {
            out,
            block: Block::default(),
            others: Vec::new(),
            per_origin: BTreeMap::new(),
        })
    }

    /// A record, with its index key or without one (scope `peer`).
    pub(super) fn record(&mut self, id: RecordId, key: Option<IndexKey>) {
        *self.per_origin.entry(id.origin).or_default() += 1;
        match key {
            Some(key) => self.block.push(&mut self.out, id, key),
            None => self.others.push(id),
        }
    }

    /// How many records have been written, per origin.
    pub(super) fn per_origin(&self) -> &BTreeMap<NodeId, u64> {
        &self.per_origin
    }

    /// Ends the file: returns the records in it, its length and the writer.
    pub(super) fn finish(mut self) -> std::io::Result<(u64, u64, W)> {
        self.block.finish(&mut self.out);
        let out = &mut self.out;
        out.u8(TAG_OTHERS);
        out.u32(u32::try_from(self.others.len()).unwrap_or(u32::MAX));
        for id in &self.others {
            out.u64(id.origin.get());
            out.u64(id.seq);
        }
        out.u8(TAG_END);
        out.u64(self.block.total);
        out.u64(self.others.len() as u64);
        let records = self.block.total + self.others.len() as u64;
        let (bytes, w) = self.out.finish()?;
        Ok((records, bytes, w))
    }
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
pub(super) fn decode(
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
    let epoch = d.u64()?;
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
                    epoch,
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
        let mut covered = Frontier::new();
        covered.insert_range(NodeId::new(5), 1..=3);
        let header = Header {
            node: NodeId::new(node),
            epoch: 3,
            covered: &covered,
            digest: &SetDigest::new(),
        };
        let mut w = Writer::start(Vec::new(), &header).unwrap();
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
            let origin = NodeId::new(5);
            w.record(RecordId { origin, seq }, Some(key));
        }
        let origin = NodeId::new(5);
        w.record(RecordId { origin, seq: 4 }, None);
        assert_eq!(w.per_origin().get(&origin), Some(&4));
        let (records, bytes, out) = w.finish().unwrap();
        assert_eq!((records, bytes), (4, out.len() as u64));
        out
    }

    /// A file of another format version, checksum and all intact.
    #[test]
    fn another_version_is_refused_by_name() {
        let mut old = encoded(9);
        old[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&1u32.to_le_bytes());
        let body = old.len() - 4;
        let crc = crc32fast::hash(&old[..body]);
        old[body..].copy_from_slice(&crc.to_le_bytes());
        let e = decode(&old, NodeId::new(9), |_, _| {}).unwrap_err();
        assert!(e.contains("version 1"), "{e}");
    }

    #[test]
    fn a_checkpoint_reads_back_what_was_written() {
        let mut keys = Vec::new();
        let c = decode(&encoded(9), NodeId::new(9), |id, k| keys.push((id, k))).unwrap();
        assert_eq!(c.keys, 3);
        assert_eq!(c.epoch, 3);
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
