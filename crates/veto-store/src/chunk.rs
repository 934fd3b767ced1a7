//! The chunk: the unit in which records are stored.
//!
//! sled's cost is per key, so one key per record (plus one per secondary-index
//! entry) caps ingest far below what veto needs. Records are therefore grouped
//! by origin and sequence block: the records of one origin whose seqs share
//! `seq >> CHUNK_BITS` live in one value under the key `origin BE ++ block BE`.
//! A batch of 10,000 records from one origin touches about 160 keys; a restart
//! reads a few values per thousand records.
//!
//! Layout of a chunk value (all integers big-endian):
//!
//! ```text
//! u8  format (1)
//! u32 n, the number of slots (1..=CHUNK_SEQS)
//! n × { u64 seq, u64 hlc, u64 expires_at, u32 len }, ascending by seq
//! the n records, each encoded with bincode, concatenated in slot order
//! ```
//!
//! The slot table lets a point read, an audit merge or a GC scan look at stamps
//! and expiries, or decode one record, without decoding the whole chunk.

use std::ops::Range;

use veto_core::{NodeId, RecordId};

use crate::codec::show_key;
use crate::error::StoreError;

/// Records per chunk is `1 << CHUNK_BITS`.
pub(crate) const CHUNK_BITS: u32 = 6;
/// The most records one chunk holds.
pub(crate) const CHUNK_SEQS: usize = 1 << CHUNK_BITS;

const FORMAT: u8 = 1;
const HEADER: usize = 5;
const SLOT: usize = 28;

/// The key of the chunk holding `id`.
pub(crate) fn chunk_key(id: RecordId) -> [u8; 16] {
    chunk_key_of(id.origin, id.seq >> CHUNK_BITS)
}

/// The key of block `block` of `origin`'s log.
pub(crate) fn chunk_key_of(origin: NodeId, block: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&origin.get().to_be_bytes());
    k[8..].copy_from_slice(&block.to_be_bytes());
    k
}

/// One record's entry in a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) seq: u64,
    pub(crate) hlc: u64,
    pub(crate) expires_at: u64,
    bytes: Range<usize>,
}

/// What the secondary indexes know of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) min_hlc: u64,
    pub(crate) max_hlc: u64,
    pub(crate) min_expiry: u64,
}

/// A parsed chunk, borrowing its value.
pub(crate) struct ChunkRef<'a> {
    origin: NodeId,
    slots: Vec<Slot>,
    value: &'a [u8],
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

impl<'a> ChunkRef<'a> {
    /// Parses and checks a chunk stored under `key`.
    pub(crate) fn parse(key: &[u8], value: &'a [u8]) -> Result<ChunkRef<'a>, StoreError> {
        let bad = |detail: String| StoreError::Corrupt {
            tree: "records",
            key: show_key(key),
            detail,
        };
        if key.len() != 16 {
            return Err(bad(format!("chunk key is {} bytes, not 16", key.len())));
        }
        let origin = be_u64(key, 0);
        let block = be_u64(key, 8);
        if origin == 0 {
            return Err(bad("chunk key names origin zero".into()));
        }
        if value.len() < HEADER || value[0] != FORMAT {
            return Err(bad("not a chunk of format 1".into()));
        }
        let n = be_u32(value, 1) as usize;
        if n == 0 || n > CHUNK_SEQS {
            return Err(bad(format!("chunk claims {n} records")));
        }
        let table_end = HEADER + n * SLOT;
        if value.len() < table_end {
            return Err(bad("chunk slot table is truncated".into()));
        }
        let mut slots = Vec::with_capacity(n);
        let mut at = table_end;
        for i in 0..n {
            let s = HEADER + i * SLOT;
            let seq = be_u64(value, s);
            let len = be_u32(value, s + 24) as usize;
            if seq >> CHUNK_BITS != block {
                return Err(bad(format!("seq {seq} does not belong in this chunk")));
            }
            if slots.last().is_some_and(|p: &Slot| p.seq >= seq) {
                return Err(bad("chunk seqs are not ascending".into()));
            }
            let end = at
                .checked_add(len)
                .filter(|e| *e <= value.len())
                .ok_or_else(|| bad(format!("record {seq} runs past the end of the chunk")))?;
            slots.push(Slot {
                seq,
                hlc: be_u64(value, s + 8),
                expires_at: be_u64(value, s + 16),
                bytes: at..end,
            });
            at = end;
        }
        if at != value.len() {
            return Err(bad(format!("{} trailing bytes", value.len() - at)));
        }
        Ok(ChunkRef {
            origin: NodeId::new(origin),
            slots,
            value,
        })
    }

    /// The slots, ascending by seq.
    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The slot of `seq`, if the chunk holds it.
    pub(crate) fn find(&self, seq: u64) -> Option<&Slot> {
        self.slots
            .binary_search_by_key(&seq, |s| s.seq)
            .ok()
            .map(|i| &self.slots[i])
    }

    /// The record id of a slot.
    pub(crate) fn id(&self, slot: &Slot) -> RecordId {
        RecordId {
            origin: self.origin,
            seq: slot.seq,
        }
    }

    /// The encoded record of a slot.
    pub(crate) fn bytes(&self, slot: &Slot) -> &'a [u8] {
        &self.value[slot.bytes.clone()]
    }

    /// Where a slot's record lies in the chunk value.
    pub(crate) fn range(slot: &Slot) -> Range<usize> {
        slot.bytes.clone()
    }

    /// The slots as entries for rebuilding the chunk.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        self.slots.iter().map(|s| Entry {
            seq: s.seq,
            hlc: s.hlc,
            expires_at: s.expires_at,
            bytes: self.bytes(s),
        })
    }

    /// The chunk's bounds for the secondary indexes.
    pub(crate) fn bounds(&self) -> Option<Bounds> {
        bounds_of(self.slots.iter().map(|s| (s.hlc, s.expires_at)))
    }
}

fn bounds_of(it: impl Iterator<Item = (u64, u64)>) -> Option<Bounds> {
    it.fold(None, |acc: Option<Bounds>, (hlc, exp)| {
        Some(match acc {
            None => Bounds {
                min_hlc: hlc,
                max_hlc: hlc,
                min_expiry: exp,
            },
            Some(b) => Bounds {
                min_hlc: b.min_hlc.min(hlc),
                max_hlc: b.max_hlc.max(hlc),
                min_expiry: b.min_expiry.min(exp),
            },
        })
    })
}

/// An entry of a chunk being rebuilt.
pub(crate) struct Entry<'a> {
    pub(crate) seq: u64,
    pub(crate) hlc: u64,
    pub(crate) expires_at: u64,
    pub(crate) bytes: &'a [u8],
}

/// Encodes entries (ascending by seq, at most [`CHUNK_SEQS`], at least one) as a
/// chunk value, and returns it with its bounds.
pub(crate) fn encode(entries: &[Entry<'_>]) -> (Vec<u8>, Bounds) {
    let body: usize = entries.iter().map(|e| e.bytes.len()).sum();
    let mut out = Vec::with_capacity(HEADER + entries.len() * SLOT + body);
    out.push(FORMAT);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&e.seq.to_be_bytes());
        out.extend_from_slice(&e.hlc.to_be_bytes());
        out.extend_from_slice(&e.expires_at.to_be_bytes());
        out.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
    }
    for e in entries {
        out.extend_from_slice(e.bytes);
    }
    let bounds = bounds_of(entries.iter().map(|e| (e.hlc, e.expires_at))).unwrap_or(Bounds {
        min_hlc: 0,
        max_hlc: 0,
        min_expiry: 0,
    });
    (out, bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, bytes: &[u8]) -> Entry<'_> {
        Entry {
            seq,
            hlc: 100 + seq,
            expires_at: 1000 - seq,
            bytes,
        }
    }

    #[test]
    fn round_trips_and_finds() {
        let (a, b) = (b"first".as_slice(), b"second!".as_slice());
        let (value, bounds) = encode(&[entry(64, a), entry(70, b)]);
        let key = chunk_key_of(NodeId::new(9), 1);
        let chunk = ChunkRef::parse(&key, &value).unwrap();
        assert_eq!(chunk.slots().len(), 2);
        assert_eq!(chunk.bytes(chunk.find(70).unwrap()), b);
        assert_eq!(chunk.bytes(chunk.find(64).unwrap()), a);
        assert!(chunk.find(65).is_none());
        assert_eq!(
            bounds,
            Bounds {
                min_hlc: 164,
                max_hlc: 170,
                min_expiry: 930
            }
        );
        assert_eq!(chunk.bounds(), Some(bounds));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let (value, _) = encode(&[entry(64, b"abc"), entry(65, b"de")]);
        let key = chunk_key_of(NodeId::new(9), 1);
        for cut in 0..value.len() {
            assert!(ChunkRef::parse(&key, &value[..cut]).is_err());
        }
        let mut longer = value.clone();
        longer.push(0);
        assert!(ChunkRef::parse(&key, &longer).is_err());
        // Seqs from another block.
        assert!(ChunkRef::parse(&chunk_key_of(NodeId::new(9), 2), &value).is_err());
        // A length field that points far past the end.
        let mut huge = value.clone();
        huge[HEADER + 24..HEADER + 28].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(ChunkRef::parse(&key, &huge).is_err());
        assert!(ChunkRef::parse(&[1, 2, 3], &value).is_err());
    }
}
