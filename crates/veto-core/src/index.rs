//! The lookup index: answers a [`Check`] with a handful of hash lookups.
//!
//! Keys are reduced to 64-bit digests and each entry is 16 or 24 bytes, so ten
//! million token revocations fit in a few hundred megabytes. Full records stay in
//! the store; a hit names the record and the caller fetches it if it wants the
//! reason. Every key is indexed once, with its issuer digest beside it, so a check
//! costs one lookup per key it carries whatever the issuer semantics.
//!
//! Digests are 64 bits: two different keys collide with probability about 2^-64
//! per pair, which the design accepts in exchange for a fixed-size index.

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashMap;

use crate::check::{Check, Hit};
use crate::id::{NodeId, RecordId};
use crate::record::{Record, ScopeKind, Target};

/// Seed for key digests. Fixed, so that an index rebuilt anywhere hashes alike.
const DIGEST_SEED: u64 = 0x7665_746f_2d6b_6579;

// One tag per key namespace so that, say, a jti and a sid with the same text never
// collide on purpose.
const TAG_JTI: u8 = 1;
const TAG_TOKEN_SHA: u8 = 2;
const TAG_SID: u8 = 3;
const TAG_SUB: u8 = 4;
const TAG_CLIENT: u8 = 5;
const TAG_ISS: u8 = 6;
const TAG_KID: u8 = 7;
const TAG_ISS_QUALIFIER: u8 = 8;

fn key_digest(tag: u8, bytes: &[u8]) -> u64 {
    let mut h = foldhash::quality::FixedState::with_seed(DIGEST_SEED).build_hasher();
    h.write_u8(tag);
    h.write(bytes);
    h.finish()
}

/// The digest that stands for "this issuer" beside a key; 0 means "any issuer".
fn iss_digest(iss: Option<&str>) -> u64 {
    iss.map_or(0, |i| key_digest(TAG_ISS_QUALIFIER, i.as_bytes()).max(1))
}

/// Keys are already uniformly distributed digests: hashing them again is waste.
#[derive(Clone, Copy, Default)]
struct PassThrough(u64);

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
struct BuildPassThrough;

impl BuildHasher for BuildPassThrough {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

/// A record's place in the index: origin slot (16 bits) and seq (48 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecordRef(u64);

const SEQ_BITS: u32 = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    iss: u64,
    rec: RecordRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BulkEntry {
    iss: u64,
    before: u64,
    rec: RecordRef,
}

fn iss_ok(entry_iss: u64, check_iss: Option<u64>) -> bool {
    entry_iss == 0 || check_iss.is_none_or(|c| c == entry_iss)
}

/// Exact-match keys. Nearly every key has one record, so that record lives inline
/// and the rare second record for the same key goes to `extra`.
#[derive(Default)]
struct ExactMap {
    main: HashMap<u64, Entry, BuildPassThrough>,
    extra: HashMap<u64, Vec<Entry>, BuildPassThrough>,
}

impl ExactMap {
    fn insert(&mut self, key: u64, entry: Entry) {
        match self.main.get(&key) {
            None => {
                self.main.insert(key, entry);
            }
            Some(e) if *e == entry => {}
            Some(_) => {
                let more = self.extra.entry(key).or_default();
                if !more.contains(&entry) {
                    more.push(entry);
                }
            }
        }
    }

    fn remove(&mut self, key: u64, rec: RecordRef) {
        if self.main.get(&key).is_some_and(|e| e.rec == rec) {
            let promoted = self.extra.get_mut(&key).and_then(Vec::pop);
            match promoted {
                Some(next) => {
                    self.main.insert(key, next);
                }
                None => {
                    self.main.remove(&key);
                }
            }
        } else if let Some(more) = self.extra.get_mut(&key) {
            more.retain(|e| e.rec != rec);
        }
        if self.extra.get(&key).is_some_and(Vec::is_empty) {
            self.extra.remove(&key);
        }
    }

    #[inline]
    fn find(&self, key: u64, check_iss: Option<u64>) -> Option<RecordRef> {
        let first = self.main.get(&key)?;
        if iss_ok(first.iss, check_iss) {
            return Some(first.rec);
        }
        if self.extra.is_empty() {
            return None;
        }
        let more = self.extra.get(&key)?;
        more.iter()
            .find(|e| iss_ok(e.iss, check_iss))
            .map(|e| e.rec)
    }

    fn len(&self) -> usize {
        self.main.len() + self.extra.values().map(Vec::len).sum::<usize>()
    }
}

/// Cutoff keys. There are few bulk records, each key usually with one cutoff per
/// issuer, so a short vector per key is enough.
#[derive(Default)]
struct BulkMap {
    map: HashMap<u64, Vec<BulkEntry>, BuildPassThrough>,
}

impl BulkMap {
    fn insert(&mut self, key: u64, entry: BulkEntry) {
        let list = self.map.entry(key).or_default();
        if !list.contains(&entry) {
            list.push(entry);
        }
    }

    fn remove(&mut self, key: u64, rec: RecordRef) {
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
    fn find(&self, key: u64, check_iss: Option<u64>, iat: Option<u64>) -> Option<RecordRef> {
        let list = self.map.get(&key)?;
        list.iter()
            .filter(|e| iss_ok(e.iss, check_iss) && iat.is_none_or(|iat| iat < e.before))
            .max_by_key(|e| e.before)
            .map(|e| e.rec)
    }

    fn len(&self) -> usize {
        self.map.values().map(Vec::len).sum()
    }
}

/// A record cannot be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The sequence number does not fit the index's 48-bit slot.
    #[error("sequence number {0} exceeds 2^48")]
    SeqTooLarge(u64),
    /// More distinct origins than the index has slots for.
    #[error("more than 65,536 origin nodes")]
    TooManyOrigins,
}

/// The in-memory lookup index over every live record.
#[derive(Default)]
pub struct LookupIndex {
    origins: Vec<NodeId>,
    origin_slots: std::collections::HashMap<NodeId, u16>,
    tokens: ExactMap,
    sessions: ExactMap,
    keys: ExactMap,
    subjects: BulkMap,
    clients: BulkMap,
    issuers: BulkMap,
}

impl LookupIndex {
    /// An empty index.
    pub fn new() -> LookupIndex {
        LookupIndex::default()
    }

    fn record_ref(&mut self, id: RecordId) -> Result<RecordRef, IndexError> {
        if id.seq >> SEQ_BITS != 0 {
            return Err(IndexError::SeqTooLarge(id.seq));
        }
        let slot = match self.origin_slots.get(&id.origin) {
            Some(slot) => *slot,
            None => {
                let slot =
                    u16::try_from(self.origins.len()).map_err(|_| IndexError::TooManyOrigins)?;
                self.origins.push(id.origin);
                self.origin_slots.insert(id.origin, slot);
                slot
            }
        };
        Ok(RecordRef(u64::from(slot) << SEQ_BITS | id.seq))
    }

    fn existing_ref(&self, id: RecordId) -> Option<RecordRef> {
        // Such a seq was never indexed, and its high bits would spell another
        // origin's slot.
        if id.seq >> SEQ_BITS != 0 {
            return None;
        }
        let slot = *self.origin_slots.get(&id.origin)?;
        Some(RecordRef(u64::from(slot) << SEQ_BITS | id.seq))
    }

    fn record_id(&self, r: RecordRef) -> RecordId {
        let slot = (r.0 >> SEQ_BITS) as usize;
        RecordId {
            origin: self.origins[slot],
            seq: r.0 & ((1 << SEQ_BITS) - 1),
        }
    }

    /// Adds a record. Adding the same record twice changes nothing.
    pub fn insert(&mut self, id: RecordId, target: &Target) -> Result<(), IndexError> {
        let rec = self.record_ref(id)?;
        let iss = iss_digest(target.iss());
        match target {
            Target::Token { jti, .. } => self
                .tokens
                .insert(key_digest(TAG_JTI, jti.as_bytes()), Entry { iss, rec }),
            Target::TokenHash { sha256 } => self
                .tokens
                .insert(key_digest(TAG_TOKEN_SHA, sha256), Entry { iss: 0, rec }),
            Target::Session { sid, .. } => self
                .sessions
                .insert(key_digest(TAG_SID, sid.as_bytes()), Entry { iss, rec }),
            Target::Key { kid, .. } => self
                .keys
                .insert(key_digest(TAG_KID, kid.as_bytes()), Entry { iss, rec }),
            Target::Subject { sub, before, .. } => self.subjects.insert(
                key_digest(TAG_SUB, sub.as_bytes()),
                BulkEntry {
                    iss,
                    before: *before,
                    rec,
                },
            ),
            Target::Client {
                client_id, before, ..
            } => self.clients.insert(
                key_digest(TAG_CLIENT, client_id.as_bytes()),
                BulkEntry {
                    iss,
                    before: *before,
                    rec,
                },
            ),
            // The issuer is the key itself, so there is no qualifier to compare.
            Target::Issuer { iss, before } => self.issuers.insert(
                key_digest(TAG_ISS, iss.as_bytes()),
                BulkEntry {
                    iss: 0,
                    before: *before,
                    rec,
                },
            ),
        }
        Ok(())
    }

    /// Indexes a whole record.
    pub fn insert_record(&mut self, record: &Record) -> Result<(), IndexError> {
        self.insert(record.id, &record.target)
    }

    /// Removes a record (garbage collection). Removing an absent record is a no-op.
    pub fn remove(&mut self, id: RecordId, target: &Target) {
        let Some(rec) = self.existing_ref(id) else {
            return;
        };
        match target {
            Target::Token { jti, .. } => {
                self.tokens.remove(key_digest(TAG_JTI, jti.as_bytes()), rec)
            }
            Target::TokenHash { sha256 } => {
                self.tokens.remove(key_digest(TAG_TOKEN_SHA, sha256), rec)
            }
            Target::Session { sid, .. } => self
                .sessions
                .remove(key_digest(TAG_SID, sid.as_bytes()), rec),
            Target::Key { kid, .. } => self.keys.remove(key_digest(TAG_KID, kid.as_bytes()), rec),
            Target::Subject { sub, .. } => self
                .subjects
                .remove(key_digest(TAG_SUB, sub.as_bytes()), rec),
            Target::Client { client_id, .. } => self
                .clients
                .remove(key_digest(TAG_CLIENT, client_id.as_bytes()), rec),
            Target::Issuer { iss, .. } => self
                .issuers
                .remove(key_digest(TAG_ISS, iss.as_bytes()), rec),
        }
    }

    /// Answers a check: the first matching record in the order token, session,
    /// key, subject, client, issuer, or `None` when the token is not revoked.
    #[inline]
    pub fn check(&self, check: &Check<'_>) -> Option<Hit> {
        let hit = |scope, r: RecordRef| {
            Some(Hit {
                scope,
                record: self.record_id(r),
            })
        };
        let iss = check.iss.map(|i| iss_digest(Some(i)));
        if !self.tokens.main.is_empty() {
            if let Some(jti) = check.jti {
                if let Some(r) = self.tokens.find(key_digest(TAG_JTI, jti.as_bytes()), iss) {
                    return hit(ScopeKind::Token, r);
                }
            }
            if let Some(sha) = &check.token_sha256 {
                if let Some(r) = self.tokens.find(key_digest(TAG_TOKEN_SHA, sha), None) {
                    return hit(ScopeKind::Token, r);
                }
            }
        }
        if let (Some(sid), false) = (check.sid, self.sessions.main.is_empty()) {
            if let Some(r) = self.sessions.find(key_digest(TAG_SID, sid.as_bytes()), iss) {
                return hit(ScopeKind::Session, r);
            }
        }
        if let (Some(kid), false) = (check.kid, self.keys.main.is_empty()) {
            if let Some(r) = self.keys.find(key_digest(TAG_KID, kid.as_bytes()), iss) {
                return hit(ScopeKind::Key, r);
            }
        }
        if let (Some(sub), false) = (check.sub, self.subjects.map.is_empty()) {
            if let Some(r) = self
                .subjects
                .find(key_digest(TAG_SUB, sub.as_bytes()), iss, check.iat)
            {
                return hit(ScopeKind::Subject, r);
            }
        }
        if let (Some(cid), false) = (check.client_id, self.clients.map.is_empty()) {
            if let Some(r) =
                self.clients
                    .find(key_digest(TAG_CLIENT, cid.as_bytes()), iss, check.iat)
            {
                return hit(ScopeKind::Client, r);
            }
        }
        if let (Some(i), false) = (check.iss, self.issuers.map.is_empty()) {
            if let Some(r) = self
                .issuers
                .find(key_digest(TAG_ISS, i.as_bytes()), None, check.iat)
            {
                return hit(ScopeKind::Issuer, r);
            }
        }
        None
    }

    /// How many records are indexed.
    pub fn len(&self) -> usize {
        self.tokens.len()
            + self.sessions.len()
            + self.keys.len()
            + self.subjects.len()
            + self.clients.len()
            + self.issuers.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reserves room for `additional` token records, so that a bulk load at start
    /// does not rehash the table over and over.
    pub fn reserve_tokens(&mut self, additional: usize) {
        self.tokens.main.reserve(additional);
    }
}
