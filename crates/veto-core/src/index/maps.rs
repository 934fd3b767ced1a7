//! The maps behind the lookup index: exact-match keys packed into 16-byte
//! buckets, and cutoff keys with their short lists.

use std::hash::{BuildHasher, Hasher};

use hashbrown::hash_map::Entry as Slot;
use hashbrown::HashMap;

use super::CheckIss;

/// Keys are already uniformly distributed digests: hashing them again is waste.
#[derive(Clone, Copy, Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Copy, Default)]
pub(super) struct BuildPassThrough;

impl BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

/// Bits of a [`RecordRef`] that hold the seq; the 16 above name the origin slot.
pub(super) const SEQ_BITS: u32 = 48;

/// A record's place in the index: origin slot (16 bits) and seq (48 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RecordRef(u64);

impl RecordRef {
    /// `seq` must be below 2^48.
    #[inline]
    pub(super) fn new(slot: u16, seq: u64) -> RecordRef {
        debug_assert!(seq >> SEQ_BITS == 0);
        RecordRef(u64::from(slot) << SEQ_BITS | seq)
    }

    #[inline]
    pub(super) fn slot(self) -> u16 {
        (self.0 >> SEQ_BITS) as u16
    }

    #[inline]
    pub(super) fn seq(self) -> u64 {
        self.0 & ((1 << SEQ_BITS) - 1)
    }
}

/// One record under one key: the issuer it is limited to (0 for any) and where
/// the record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) iss: u64,
    pub(super) rec: RecordRef,
}

/// One cutoff under one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BulkEntry {
    pub(super) iss: u64,
    pub(super) before: u64,
    pub(super) rec: RecordRef,
}

/// Bits of a packed entry that hold the seq; the 24 above number a context.
const PACKED_SEQ_BITS: u32 = 40;
const PACKED_SEQ_MASK: u64 = (1 << PACKED_SEQ_BITS) - 1;
/// Context numbers run below this; the all-ones number is kept for [`SPILLED`].
const MAX_CONTEXTS: usize = (1 << (64 - PACKED_SEQ_BITS)) - 1;

/// An [`Entry`] in 64 bits: a context number (24 bits) and the seq (40 bits).
/// With the key beside it a bucket is 16 bytes instead of 24, which is a third
/// less memory for the millions of token revocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Packed(u64);

/// Marks a key whose entries are all in the map's `extra` list, because none
/// packs (a seq of 2^40 or more, or every context number taken).
const SPILLED: Packed = Packed(u64::MAX);

/// The (issuer digest, origin slot) pairs that entries share. There are few:
/// one per issuer per origin node, not one per record.
#[derive(Default)]
pub(super) struct Contexts {
    table: Vec<(u64, u16)>,
    numbers: std::collections::HashMap<(u64, u16), u32>,
    /// The last context numbered or found: consecutive records nearly always
    /// share one, and a bulk load then skips the map.
    last: Option<((u64, u16), u32)>,
}

impl Contexts {
    /// Packs an entry, numbering its context if it is new; `None` if it does not
    /// fit.
    fn pack(&mut self, e: Entry) -> Option<Packed> {
        let seq = e.rec.seq();
        if seq > PACKED_SEQ_MASK {
            return None;
        }
        let context = (e.iss, e.rec.slot());
        let number = match self.last {
            Some((c, n)) if c == context => n,
            _ => self.number(context)?,
        };
        Some(Packed(u64::from(number) << PACKED_SEQ_BITS | seq))
    }

    fn number(&mut self, context: (u64, u16)) -> Option<u32> {
        let number = match self.numbers.get(&context) {
            Some(n) => *n,
            None if self.table.len() < MAX_CONTEXTS => {
                let n = u32::try_from(self.table.len()).ok()?;
                self.table.push(context);
                self.numbers.insert(context, n);
                n
            }
            None => return None,
        };
        self.last = Some((context, number));
        Some(number)
    }

    /// The issuer digests of every context.
    pub(super) fn issuers(&self) -> impl Iterator<Item = u64> + '_ {
        self.table.iter().map(|(iss, _)| *iss)
    }

    /// The entry a packed value stands for. Never called with [`SPILLED`].
    #[inline]
    fn unpack(&self, p: Packed) -> Entry {
        let (iss, slot) = self.table[(p.0 >> PACKED_SEQ_BITS) as usize];
        Entry {
            iss,
            rec: RecordRef::new(slot, p.0 & PACKED_SEQ_MASK),
        }
    }
}

/// Exact-match keys. Nearly every key has one record, so that record lives in
/// the main table, packed; the rare further records for the same key, and
/// entries that do not pack, go to `extra`.
#[derive(Default)]
pub(super) struct ExactMap {
    main: HashMap<u64, Packed, BuildPassThrough>,
    extra: HashMap<u64, Vec<Entry>, BuildPassThrough>,
    /// How many keys of `main` are [`SPILLED`], so that `len` stays cheap.
    spilled: usize,
}

impl ExactMap {
    pub(super) fn insert(&mut self, key: u64, entry: Entry, contexts: &mut Contexts) {
        // One probe of the table whether the key is new or not: a restart
        // inserts ten million keys, each probe a likely cache miss.
        match self.main.entry(key) {
            Slot::Vacant(slot) => match contexts.pack(entry) {
                Some(packed) => {
                    slot.insert(packed);
                }
                None => {
                    slot.insert(SPILLED);
                    self.spilled += 1;
                    self.extra.entry(key).or_default().push(entry);
                }
            },
            Slot::Occupied(p) if *p.get() != SPILLED && contexts.unpack(*p.get()) == entry => {}
            Slot::Occupied(_) => {
                let more = self.extra.entry(key).or_default();
                if !more.contains(&entry) {
                    more.push(entry);
                }
            }
        }
    }

    pub(super) fn remove(&mut self, key: u64, rec: RecordRef, contexts: &mut Contexts) {
        let Some(first) = self.main.get(&key).copied() else {
            return;
        };
        if first != SPILLED && contexts.unpack(first).rec == rec {
            let promoted = self.extra.get_mut(&key).and_then(Vec::pop);
            match promoted {
                None => {
                    self.main.remove(&key);
                }
                Some(next) => match contexts.pack(next) {
                    Some(packed) => {
                        self.main.insert(key, packed);
                    }
                    None => {
                        self.main.insert(key, SPILLED);
                        self.spilled += 1;
                        self.extra.entry(key).or_default().push(next);
                    }
                },
            }
        } else if let Some(more) = self.extra.get_mut(&key) {
            more.retain(|e| e.rec != rec);
        }
        if self.extra.get(&key).is_some_and(Vec::is_empty) {
            self.extra.remove(&key);
            if self.main.get(&key) == Some(&SPILLED) {
                self.main.remove(&key);
                self.spilled -= 1;
            }
        }
    }

    #[inline]
    pub(super) fn find(
        &self,
        key: u64,
        contexts: &Contexts,
        check_iss: &CheckIss<'_>,
    ) -> Option<RecordRef> {
        let first = *self.main.get(&key)?;
        if first != SPILLED {
            let first = contexts.unpack(first);
            if check_iss.accepts(first.iss) {
                return Some(first.rec);
            }
            if self.extra.is_empty() {
                return None;
            }
        }
        self.extra
            .get(&key)?
            .iter()
            .find(|e| check_iss.accepts(e.iss))
            .map(|e| e.rec)
    }

    /// Every record under `key`, whatever its issuer.
    pub(super) fn all(&self, key: u64, contexts: &Contexts) -> Vec<RecordRef> {
        let mut out = Vec::new();
        match self.main.get(&key) {
            None => return out,
            Some(p) if *p != SPILLED => out.push(contexts.unpack(*p).rec),
            Some(_) => {}
        }
        if let Some(more) = self.extra.get(&key) {
            out.extend(more.iter().map(|e| e.rec));
        }
        out
    }

    /// Every record in the map.
    pub(super) fn every(&self, contexts: &Contexts) -> Vec<RecordRef> {
        let mut out: Vec<RecordRef> = self
            .main
            .values()
            .filter(|p| **p != SPILLED)
            .map(|p| contexts.unpack(*p).rec)
            .collect();
        out.extend(self.extra.values().flatten().map(|e| e.rec));
        out
    }

    /// The issuer digests of entries kept outside the packed table.
    pub(super) fn spilled_issuers(&self) -> impl Iterator<Item = u64> + '_ {
        self.extra.values().flatten().map(|e| e.iss)
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.main.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.main.len() - self.spilled + self.extra.values().map(Vec::len).sum::<usize>()
    }

    pub(super) fn reserve(&mut self, additional: usize) {
        self.main.reserve(additional);
    }

    /// The main table's bucket count: a key's home bucket is its low bits
    /// under `buckets() - 1` (hashbrown, with the pass-through hasher). The
    /// table holds at least half and fewer than all of its buckets' worth.
    pub(super) fn buckets(&self) -> usize {
        (self.main.capacity() + 1).next_power_of_two()
    }
}

/// Cutoff keys. There are few bulk records, each key usually with one cutoff per
/// issuer, so a short vector per key is enough.
#[derive(Default)]
pub(super) struct BulkMap {
    map: HashMap<u64, Vec<BulkEntry>, BuildPassThrough>,
}

impl BulkMap {
    pub(super) fn insert(&mut self, key: u64, entry: BulkEntry) {
        let list = self.map.entry(key).or_default();
        if !list.contains(&entry) {
            list.push(entry);
        }
    }

    pub(super) fn remove(&mut self, key: u64, rec: RecordRef) {
        if let Some(list) = self.map.get_mut(&key) {
            list.retain(|e| e.rec != rec);
            if list.is_empty() {
                self.map.remove(&key);
            }
        }
    }

    /// The entry with the latest cutoff that applies, so the answer names the
    /// record that decides it.
    #[inline]
    pub(super) fn find(
        &self,
        key: u64,
        check_iss: &CheckIss<'_>,
        iat: Option<u64>,
    ) -> Option<RecordRef> {
        let list = self.map.get(&key)?;
        list.iter()
            .filter(|e| iat.is_none_or(|iat| iat < e.before) && check_iss.accepts(e.iss))
            .max_by_key(|e| e.before)
            .map(|e| e.rec)
    }

    /// Every record under `key`, whatever its issuer and cutoff.
    pub(super) fn all(&self, key: u64) -> Vec<RecordRef> {
        self.map
            .get(&key)
            .map(|list| list.iter().map(|e| e.rec).collect())
            .unwrap_or_default()
    }

    /// Every record in the map.
    pub(super) fn every(&self) -> Vec<RecordRef> {
        self.map.values().flatten().map(|e| e.rec).collect()
    }

    /// The issuer digests of every cutoff.
    pub(super) fn issuers(&self) -> impl Iterator<Item = u64> + '_ {
        self.map.values().flatten().map(|e| e.iss)
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.map.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(iss: u64, slot: u16, seq: u64) -> Entry {
        Entry {
            iss,
            rec: RecordRef::new(slot, seq),
        }
    }

    #[test]
    fn packing_round_trips_and_refuses_what_does_not_fit() {
        let mut c = Contexts::default();
        for e in [entry(0, 0, 1), entry(7, 3, PACKED_SEQ_MASK), entry(7, 4, 9)] {
            let p = c.pack(e).unwrap();
            assert_ne!(p, SPILLED);
            assert_eq!(c.unpack(p), e);
        }
        assert_eq!(c.table.len(), 3);
        assert_eq!(c.pack(entry(7, 3, PACKED_SEQ_MASK + 1)), None);
    }

    /// A key whose only entries do not pack is still found, counted and removed.
    #[test]
    fn spilled_entries_behave_like_packed_ones() {
        let mut c = Contexts::default();
        let mut m = ExactMap::default();
        let wide = entry(5, 1, PACKED_SEQ_MASK + 1);
        let narrow = entry(6, 1, 2);
        let any = CheckIss::new(None);
        m.insert(10, wide, &mut c);
        m.insert(10, wide, &mut c);
        m.insert(10, narrow, &mut c);
        m.insert(11, narrow, &mut c);
        assert_eq!(m.len(), 3);
        assert_eq!(m.find(10, &c, &any), Some(wide.rec));
        m.remove(10, wide.rec, &mut c);
        assert_eq!(m.len(), 2);
        assert_eq!(m.find(10, &c, &any), Some(narrow.rec));
        m.remove(10, narrow.rec, &mut c);
        assert_eq!(m.find(10, &c, &any), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.spilled, 0);
        assert!(m.main.get(&10).is_none() && m.extra.is_empty());

        // A wide entry promoted into the main slot spills it.
        m.insert(12, narrow, &mut c);
        m.insert(12, wide, &mut c);
        m.remove(12, narrow.rec, &mut c);
        assert_eq!(m.main.get(&12), Some(&SPILLED));
        assert_eq!(m.find(12, &c, &any), Some(wide.rec));
        assert_eq!(m.len(), 2);
        m.remove(12, wide.rec, &mut c);
        assert_eq!((m.len(), m.spilled), (1, 0));
    }
}
