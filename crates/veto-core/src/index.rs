//! The lookup index: answers a [`Check`] with a handful of hash lookups.
//!
//! Keys are reduced to 64-bit digests, and a key with its one record packs into
//! a 16-byte bucket, so ten million token revocations fit in under 300 MB. Full records stay in
//! the store; a hit names the record and the caller fetches it if it wants the
//! reason. Every key is indexed once, with its issuer digest beside it, so a check
//! costs one lookup per key it carries whatever the issuer semantics.
//!
//! Digests are 64 bits: two different keys collide with probability about 2^-64
//! per pair, which the design accepts in exchange for a fixed-size index.

mod bulk;
mod enumerate;
mod maps;

pub use bulk::BulkLoad;

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use maps::{BulkEntry, BulkMap, Contexts, Entry, ExactMap, RecordRef, SEQ_BITS};

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

/// The 64-bit digest of a key in one namespace.
///
/// The tag selects the seed rather than being hashed as a prefix: with a constant
/// tag the seed is a constant too, and a key costs one pass of foldhash over its
/// bytes and nothing more. foldhash's `fast` variant suffices: its output is what
/// hashbrown itself uses as a table hash, and the `quality` variant only re-mixes
/// that output, so it cannot make two keys collide less often.
#[inline(always)]
fn key_digest(tag: u8, bytes: &[u8]) -> u64 {
    let seed = DIGEST_SEED ^ u64::from(tag).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut h = foldhash::fast::FixedState::with_seed(seed).build_hasher();
    h.write(bytes);
    h.finish()
}

/// The digest that stands for "this issuer" beside a key; 0 means "any issuer".
#[inline]
fn iss_digest(iss: Option<&str>) -> u64 {
    iss.map_or(0, |i| key_digest(TAG_ISS_QUALIFIER, i.as_bytes()).max(1))
}

/// The issuer of a check, digested only when an entry names an issuer to compare
/// with: most probes miss or hit an any-issuer entry and never need it.
struct CheckIss<'a> {
    raw: Option<&'a str>,
    digest: Cell<u64>,
}

impl<'a> CheckIss<'a> {
    #[inline]
    fn new(raw: Option<&'a str>) -> Self {
        CheckIss {
            raw,
            digest: Cell::new(0),
        }
    }

    /// Whether an entry with issuer digest `entry_iss` applies to this check: it
    /// names no issuer, the check has none (fail closed), or they are the same.
    #[inline]
    fn accepts(&self, entry_iss: u64) -> bool {
        if entry_iss == 0 {
            return true;
        }
        let Some(raw) = self.raw else {
            return true;
        };
        let mut digest = self.digest.get();
        if digest == 0 {
            digest = iss_digest(Some(raw));
            self.digest.set(digest);
        }
        digest == entry_iss
    }
}

/// Which of the index's maps a key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexMap {
    /// Tokens, by `jti` or by SHA-256.
    Tokens,
    /// Sessions, by `sid`.
    Sessions,
    /// Signing keys, by `kid`.
    Keys,
    /// Subject cutoffs.
    Subjects,
    /// Client cutoffs.
    Clients,
    /// Issuer cutoffs.
    Issuers,
}

impl IndexMap {
    /// Every map, in the order of their [`IndexMap::number`].
    pub const ALL: [IndexMap; 6] = [
        IndexMap::Tokens,
        IndexMap::Sessions,
        IndexMap::Keys,
        IndexMap::Subjects,
        IndexMap::Clients,
        IndexMap::Issuers,
    ];

    /// A stable number for files (a checkpoint of the index).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The map a [`IndexMap::number`] stands for.
    pub fn from_number(n: u8) -> Option<IndexMap> {
        IndexMap::ALL.get(usize::from(n)).copied()
    }

    /// Whether its keys are cutoffs, whose `before` matters.
    pub fn is_bulk(self) -> bool {
        matches!(
            self,
            IndexMap::Subjects | IndexMap::Clients | IndexMap::Issuers
        )
    }
}

/// A record's one key in the index, digested: all the index keeps of its
/// target. A checkpoint of the index is a list of these with record ids, so
/// that a restart inserts them without reading or hashing the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexKey {
    /// The map the key is in.
    pub map: IndexMap,
    /// The key's 64-bit digest.
    pub key: u64,
    /// The digest of the issuer it is limited to, 0 for any.
    pub iss: u64,
    /// A cutoff's `before` (0 for exact keys).
    pub before: u64,
}

impl IndexKey {
    /// The key a target is indexed under; `None` for a `peer` record, which
    /// revokes no token and is never indexed.
    pub fn of(target: &Target) -> Option<IndexKey> {
        if !target.kind().revokes_tokens() {
            return None;
        }
        let iss = iss_digest(target.iss());
        let key = |map, tag, bytes: &[u8], iss, before| IndexKey {
            map,
            key: key_digest(tag, bytes),
            iss,
            before,
        };
        Some(match target {
            Target::Token { jti, .. } => key(IndexMap::Tokens, TAG_JTI, jti.as_bytes(), iss, 0),
            Target::TokenHash { sha256 } => key(IndexMap::Tokens, TAG_TOKEN_SHA, sha256, 0, 0),
            Target::Session { sid, .. } => key(IndexMap::Sessions, TAG_SID, sid.as_bytes(), iss, 0),
            Target::Key { kid, .. } => key(IndexMap::Keys, TAG_KID, kid.as_bytes(), iss, 0),
            Target::Subject { sub, before, .. } => {
                key(IndexMap::Subjects, TAG_SUB, sub.as_bytes(), iss, *before)
            }
            Target::Client {
                client_id, before, ..
            } => key(
                IndexMap::Clients,
                TAG_CLIENT,
                client_id.as_bytes(),
                iss,
                *before,
            ),
            // The issuer is the key itself, so there is no qualifier to compare.
            Target::Issuer { iss, before } => {
                key(IndexMap::Issuers, TAG_ISS, iss.as_bytes(), 0, *before)
            }
            Target::Peer { .. } => return None,
        })
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
    /// The last origin looked up: a bulk load's records come origin by origin.
    last_origin: Option<(NodeId, u16)>,
    tokens: ExactMap,
    sessions: ExactMap,
    keys: ExactMap,
    /// Shared by the exact maps, whose entries name a context by number.
    contexts: Contexts,
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
        let slot = match self.last_origin {
            Some((origin, slot)) if origin == id.origin => slot,
            _ => match self.origin_slots.get(&id.origin) {
                Some(slot) => *slot,
                None => {
                    let slot = u16::try_from(self.origins.len())
                        .map_err(|_| IndexError::TooManyOrigins)?;
                    self.origins.push(id.origin);
                    self.origin_slots.insert(id.origin, slot);
                    slot
                }
            },
        };
        self.last_origin = Some((id.origin, slot));
        Ok(RecordRef::new(slot, id.seq))
    }

    fn existing_ref(&self, id: RecordId) -> Option<RecordRef> {
        // Such a seq was never indexed, and its high bits would spell another
        // origin's slot.
        if id.seq >> SEQ_BITS != 0 {
            return None;
        }
        let slot = *self.origin_slots.get(&id.origin)?;
        Some(RecordRef::new(slot, id.seq))
    }

    #[inline]
    fn record_id(&self, r: RecordRef) -> RecordId {
        RecordId {
            origin: self.origins[usize::from(r.slot())],
            seq: r.seq(),
        }
    }

    /// Adds a record. Adding the same record twice changes nothing. A
    /// `peer` record is not indexed: it revokes no token, so no lookup may
    /// ever find it (veto-node keeps it in its membership instead).
    pub fn insert(&mut self, id: RecordId, target: &Target) -> Result<(), IndexError> {
        match IndexKey::of(target) {
            Some(key) => self.insert_key(id, key),
            None => Ok(()),
        }
    }

    /// Adds a record by its digested key, as [`IndexKey::of`] made it: what a
    /// restart from a checkpoint does, without the targets.
    pub fn insert_key(&mut self, id: RecordId, key: IndexKey) -> Result<(), IndexError> {
        let rec = self.record_ref(id)?;
        let entry = Entry { iss: key.iss, rec };
        let bulk = BulkEntry {
            iss: key.iss,
            before: key.before,
            rec,
        };
        let contexts = &mut self.contexts;
        match key.map {
            IndexMap::Tokens => self.tokens.insert(key.key, entry, contexts),
            IndexMap::Sessions => self.sessions.insert(key.key, entry, contexts),
            IndexMap::Keys => self.keys.insert(key.key, entry, contexts),
            IndexMap::Subjects => self.subjects.insert(key.key, bulk),
            IndexMap::Clients => self.clients.insert(key.key, bulk),
            IndexMap::Issuers => self.issuers.insert(key.key, bulk),
        }
        Ok(())
    }

    /// Indexes a whole record.
    pub fn insert_record(&mut self, record: &Record) -> Result<(), IndexError> {
        self.insert(record.id, &record.target)
    }

    /// Removes a record (garbage collection). Removing an absent record is a no-op.
    pub fn remove(&mut self, id: RecordId, target: &Target) {
        let (Some(rec), Some(key)) = (self.existing_ref(id), IndexKey::of(target)) else {
            return;
        };
        let contexts = &mut self.contexts;
        match key.map {
            IndexMap::Tokens => self.tokens.remove(key.key, rec, contexts),
            IndexMap::Sessions => self.sessions.remove(key.key, rec, contexts),
            IndexMap::Keys => self.keys.remove(key.key, rec, contexts),
            IndexMap::Subjects => self.subjects.remove(key.key, rec),
            IndexMap::Clients => self.clients.remove(key.key, rec),
            IndexMap::Issuers => self.issuers.remove(key.key, rec),
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
        let iss = CheckIss::new(check.iss);
        let any_iss = CheckIss::new(None);
        let contexts = &self.contexts;
        if !self.tokens.is_empty() {
            if let Some(jti) = check.jti {
                let key = key_digest(TAG_JTI, jti.as_bytes());
                if let Some(r) = self.tokens.find(key, contexts, &iss) {
                    return hit(ScopeKind::Token, r);
                }
            }
            if let Some(sha) = &check.token_sha256 {
                let key = key_digest(TAG_TOKEN_SHA, sha);
                if let Some(r) = self.tokens.find(key, contexts, &any_iss) {
                    return hit(ScopeKind::Token, r);
                }
            }
        }
        if let (Some(sid), false) = (check.sid, self.sessions.is_empty()) {
            let key = key_digest(TAG_SID, sid.as_bytes());
            if let Some(r) = self.sessions.find(key, contexts, &iss) {
                return hit(ScopeKind::Session, r);
            }
        }
        if let (Some(kid), false) = (check.kid, self.keys.is_empty()) {
            let key = key_digest(TAG_KID, kid.as_bytes());
            if let Some(r) = self.keys.find(key, contexts, &iss) {
                return hit(ScopeKind::Key, r);
            }
        }
        if let (Some(sub), false) = (check.sub, self.subjects.is_empty()) {
            let key = key_digest(TAG_SUB, sub.as_bytes());
            if let Some(r) = self.subjects.find(key, &iss, check.iat) {
                return hit(ScopeKind::Subject, r);
            }
        }
        if let (Some(cid), false) = (check.client_id, self.clients.is_empty()) {
            let key = key_digest(TAG_CLIENT, cid.as_bytes());
            if let Some(r) = self.clients.find(key, &iss, check.iat) {
                return hit(ScopeKind::Client, r);
            }
        }
        if let (Some(i), false) = (check.iss, self.issuers.is_empty()) {
            let key = key_digest(TAG_ISS, i.as_bytes());
            if let Some(r) = self.issuers.find(key, &any_iss, check.iat) {
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
        self.tokens.reserve(additional);
    }
}
