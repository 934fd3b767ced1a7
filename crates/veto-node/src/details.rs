//! What a hit reports besides the record's id, its reason and when it was
//! revoked, kept in memory so that a check that hits does not read the
//! record from the store.
//!
//! A record's details are 8 bytes: the revocation's unix second (32 bits)
//! and the number of its reason (32 bits) in a table where each distinct
//! reason is kept once, as most reasons repeat ("leaked", "logout"). They
//! live in chunks of [`CHUNK`] consecutive seqs of one origin, found by one
//! hash lookup. A record whose details are not here (the table of reasons
//! is full, or not noted yet after a restart) is simply
//! read from the store: the details are a cache of the store, never the
//! authority on whether a token is revoked.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use veto_core::{NodeId, Record, RecordId};

/// Seqs per chunk: small, so that a chunk left with one record after
/// garbage collection holds half a kilobyte, not more.
const CHUNK: usize = 64;

/// The most distinct reasons kept. Past it, records with a new reason are
/// not noted: their hits read the store.
pub const MAX_REASONS: usize = 65_536;

/// The most bytes of distinct reasons kept.
pub const MAX_REASON_BYTES: usize = 4 << 20;

/// A chunk slot with nothing noted.
const UNKNOWN: u64 = 0;

/// The details of one noted record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Details<'a> {
    /// Why it was revoked (empty when no reason was given).
    pub reason: &'a str,
    /// Unix seconds at which it was revoked.
    pub revoked_at: u64,
}

/// Hashes the (origin, chunk) keys: both are already spread (the origin is
/// random, chunks are consecutive), so one multiply mixes them enough.
#[derive(Default)]
struct ChunkHasher(u64);

impl Hasher for ChunkHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

struct Chunk {
    slots: [u64; CHUNK],
    /// How many slots are noted, so that an empty chunk is dropped.
    noted: u32,
}

/// The details of the records a node enforces (see the module's
/// documentation).
#[derive(Default)]
pub struct HitDetails {
    chunks: HashMap<(NodeId, u64), Box<Chunk>, BuildHasherDefault<ChunkHasher>>,
    reasons: Vec<Arc<str>>,
    reason_numbers: HashMap<Arc<str>, u32>,
    reason_bytes: usize,
    noted: usize,
}

fn place(id: RecordId) -> ((NodeId, u64), usize) {
    (
        (id.origin, id.seq / CHUNK as u64),
        (id.seq % CHUNK as u64) as usize,
    )
}

impl HitDetails {
    /// Notes what a hit on `record` reports. Returns whether it was noted;
    /// a record that is not is read from the store when hit.
    pub fn note(&mut self, record: &Record) -> bool {
        // Stamps are whole NTP-era seconds, which fit.
        let Ok(revoked_at) = u32::try_from(record.revoked_at()) else {
            return false;
        };
        let Some(reason) = self.reason_number(&record.reason) else {
            return false;
        };
        let (key, slot) = place(record.id);
        let chunk = self.chunks.entry(key).or_insert_with(|| {
            Box::new(Chunk {
                slots: [UNKNOWN; CHUNK],
                noted: 0,
            })
        });
        // Reason numbers start at 1, so a noted slot is never UNKNOWN.
        let packed = u64::from(revoked_at) << 32 | u64::from(reason);
        if chunk.slots[slot] == UNKNOWN {
            chunk.noted += 1;
            self.noted += 1;
        }
        chunk.slots[slot] = packed;
        true
    }

    /// Forgets the details of a record no longer enforced.
    pub fn forget(&mut self, id: RecordId) {
        let (key, slot) = place(id);
        let Some(chunk) = self.chunks.get_mut(&key) else {
            return;
        };
        if chunk.slots[slot] == UNKNOWN {
            return;
        }
        chunk.slots[slot] = UNKNOWN;
        chunk.noted -= 1;
        self.noted -= 1;
        if chunk.noted == 0 {
            self.chunks.remove(&key);
        }
    }

    /// The details noted for `id`, if they are.
    pub fn get(&self, id: RecordId) -> Option<Details<'_>> {
        let (key, slot) = place(id);
        let packed = self.chunks.get(&key)?.slots[slot];
        if packed == UNKNOWN {
            return None;
        }
        let reason = self.reasons.get((packed as u32 - 1) as usize)?;
        Some(Details {
            reason,
            revoked_at: packed >> 32,
        })
    }

    /// How many records have their details here.
    pub fn len(&self) -> usize {
        self.noted
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.noted == 0
    }

    /// The number of `reason` (from 1), interned if it is new and there is
    /// room.
    fn reason_number(&mut self, reason: &str) -> Option<u32> {
        if let Some(n) = self.reason_numbers.get(reason) {
            return Some(*n);
        }
        if self.reasons.len() >= MAX_REASONS || self.reason_bytes + reason.len() > MAX_REASON_BYTES
        {
            return None;
        }
        let shared: Arc<str> = Arc::from(reason);
        self.reasons.push(Arc::clone(&shared));
        let n = u32::try_from(self.reasons.len()).ok()?;
        self.reason_numbers.insert(shared, n);
        self.reason_bytes += reason.len();
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use veto_core::{Hlc, Revocation, Target};

    use super::*;

    fn record(origin: u64, seq: u64, reason: &str, hlc: Hlc) -> Record {
        Revocation {
            target: Target::Token {
                iss: None,
                jti: format!("{origin}-{seq}"),
            },
            expires_at: u64::MAX,
            reason: reason.into(),
            actor: "ops".into(),
        }
        .into_record(
            RecordId {
                origin: NodeId::new(origin),
                seq,
            },
            hlc,
        )
    }

    /// An HLC stamp at unix second `secs`.
    fn at(secs: u64) -> Hlc {
        Hlc::from_unix(std::time::Duration::from_secs(secs))
    }

    #[test]
    fn notes_finds_and_forgets() {
        let mut d = HitDetails::default();
        let a = record(7, 1, "leaked", at(1_800_000_000));
        let b = record(7, 64, "", at(1_800_000_001));
        let c = record(8, 1, "leaked", at(1_800_000_002));
        assert!(d.note(&a) && d.note(&b) && d.note(&c));
        assert_eq!(d.len(), 3);
        assert_eq!(
            d.get(a.id),
            Some(Details {
                reason: "leaked",
                revoked_at: 1_800_000_000
            })
        );
        assert_eq!(
            d.get(b.id).map(|x| (x.reason, x.revoked_at)),
            Some(("", 1_800_000_001))
        );
        assert_eq!(d.get(c.id).map(|x| x.revoked_at), Some(1_800_000_002));
        // Same seq, other origin; same chunk, other seq.
        assert_eq!(
            d.get(RecordId {
                origin: NodeId::new(9),
                seq: 1
            }),
            None
        );
        assert_eq!(
            d.get(RecordId {
                origin: NodeId::new(7),
                seq: 2
            }),
            None
        );
        // One reason kept once.
        assert_eq!(d.reasons.len(), 2);
        d.note(&a);
        assert_eq!(d.len(), 3);
        d.forget(a.id);
        d.forget(a.id);
        assert_eq!(d.get(a.id), None);
        assert_eq!(d.len(), 2);
        d.forget(b.id);
        d.forget(c.id);
        assert!(d.is_empty() && d.chunks.is_empty());
    }

    #[test]
    fn records_that_do_not_fit_are_left_to_the_store() {
        let mut d = HitDetails::default();
        for n in 0..MAX_REASONS as u64 {
            assert!(d.note(&record(1, n + 2, &format!("r{n}"), at(1))));
        }
        let new_reason = record(1, u64::MAX / 2, "one reason too many", at(1));
        assert!(!d.note(&new_reason));
        assert_eq!(d.get(new_reason.id), None);
        // A reason already kept still is.
        assert!(d.note(&record(2, 1, "r7", at(5))));
        let big = "b".repeat(MAX_REASON_BYTES + 1);
        let mut e = HitDetails::default();
        assert!(!e.note(&record(1, 1, &big, at(1))));
        assert_eq!(e.len(), 0);
    }
}
