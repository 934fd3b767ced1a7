//! veto-filter: the compact edge filter, the format `GET /v1/filter` answers
//! and an edge cache loads. Pure: it depends on veto-core and xorf only, and
//! must never depend on tokio, an HTTP stack, storage or any I/O.
//!
//! An edge gateway cannot hold the node's lookup index (56 bytes per record).
//! The filter holds, instead:
//!
//! - a binary fuse filter ([`xorf::BinaryFuse16`], about 18 bits per key,
//!   about 0.0015% false positives per probe) over the exact-scope keys:
//!   token by `(iss, jti)`, token by SHA-256, session `(iss, sid)`, key
//!   `(iss, kid)`. A record without `iss` is keyed in an any-issuer form; a
//!   check with `iss` probes both its issuer's form and the any-issuer form.
//!   A check without `iss` but with a `jti`, `sid` or `kid` cannot be ruled
//!   out (records of every issuer match it), so it answers "maybe";
//! - the exact table of bulk cutoffs (subject, client, issuer): issuer, key,
//!   `before` and `expires_at`, one entry per key with its highest cutoff;
//! - the watch cursor it was taken at: records newer than it come on
//!   `GET /v1/watch`.
//!
//! [`EdgeFilter::check`] answers [`Verdict::Revoked`] for a cutoff (exact),
//! [`Verdict::Maybe`] for a filter hit (the caller confirms with the node,
//! and treats it as revoked when the node cannot answer), and
//! [`Verdict::Clean`] otherwise. A filter never misses a key it holds.
//!
//! # Format (version 1)
//!
//! All integers little-endian. `str` is a `u16` length then UTF-8 bytes.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `VFLT` |
//! | 4 | 2 | version, `1` |
//! | 6 | 2 | flags: bit 0 set when the fuse filter is present (some exact key); other bits 0 |
//! | 8 | 8 | exact keys inserted (duplicates counted once per record) |
//! | 16 | 4 | cutoff entries |
//! | 20 | 4 | fingerprints (`u16` each) |
//! | 24 | str | cursor |
//! | | 8 | fuse seed |
//! | | 4 | segment length (a power of two, at most 2^18) |
//! | | 4 | segment length mask (segment length − 1) |
//! | | 4 | segment count length (a multiple of the segment length; plus two segment lengths, at most the fingerprints) |
//! | | 2 × n | fingerprints |
//! | | … | cutoffs, each: kind `u8` (1 subject, 2 client, 3 issuer), has-issuer `u8` (0 or 1), [issuer str], key str, before `u64`, expires_at `u64`, record origin `u64`, record seq `u64`, revoked_at `u64` |
//! | end − 4 | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Without the filter flag the four descriptor fields are zero and there are
//! no fingerprints. [`EdgeFilter::decode`] checks the magic, version,
//! flags and checksum, bounds every count and length by the bytes that are
//! there, and refuses trailing bytes, so no input can make it allocate more
//! than its length or index out of bounds.
//!
//! Exact keys are 64-bit hashes defined by this crate (see `key.rs`), part of
//! the format: a new hash is a new version.

mod codec;
mod key;

use std::collections::HashMap;

use veto_core::{Check, Record, RecordId, ScopeKind, Target};
use xorf::{BinaryFuse16, Filter as _};

pub use codec::{DecodeError, MAGIC, VERSION};

/// The kind of a bulk cutoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CutoffKind {
    /// Every token of a subject issued before the cutoff.
    Subject,
    /// Every token of a client issued before the cutoff.
    Client,
    /// Every token of an issuer issued before the cutoff.
    Issuer,
}

impl CutoffKind {
    /// The scope this cutoff stands for.
    pub fn scope(self) -> ScopeKind {
        match self {
            CutoffKind::Subject => ScopeKind::Subject,
            CutoffKind::Client => ScopeKind::Client,
            CutoffKind::Issuer => ScopeKind::Issuer,
        }
    }
}

/// One bulk cutoff: every token of `key` (of `iss`, or any issuer for
/// `None`) issued before `before` is revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cutoff {
    /// Subject, client or issuer.
    pub kind: CutoffKind,
    /// The issuer the key belongs to; `None` matches any. For an issuer
    /// cutoff the issuer is `key` and this is `None`.
    pub iss: Option<String>,
    /// The subject, client id or issuer.
    pub key: String,
    /// Tokens with `iat` before this (Unix seconds) are revoked.
    pub before: u64,
    /// After this no live token can match (Unix seconds).
    pub expires_at: u64,
    /// The record that set this cutoff (the highest one for its key).
    pub id: RecordId,
    /// When that record was revoked (Unix seconds).
    pub revoked_at: u64,
}

impl Cutoff {
    fn of(target: &Target, expires_at: u64, id: RecordId, revoked_at: u64) -> Option<Cutoff> {
        let (kind, iss, key, before) = match target {
            Target::Subject { iss, sub, before } => (CutoffKind::Subject, iss.clone(), sub, before),
            Target::Client {
                iss,
                client_id,
                before,
            } => (CutoffKind::Client, iss.clone(), client_id, before),
            Target::Issuer { iss, before } => (CutoffKind::Issuer, None, iss, before),
            _ => return None,
        };
        Some(Cutoff {
            kind,
            iss,
            key: key.clone(),
            before: *before,
            expires_at,
            id,
            revoked_at,
        })
    }

    /// Whether this cutoff revokes the token: the same rule as the node's
    /// (a token without `iat` counts as issued before any cutoff).
    fn revokes(&self, check: &Check<'_>) -> bool {
        let iss_ok = match (&self.iss, check.iss) {
            (None, _) | (_, None) => true,
            (Some(r), Some(c)) => r == c,
        };
        iss_ok && check.iat.is_none_or(|iat| iat < self.before)
    }
}

/// The answer of [`EdgeFilter::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// No record the filter holds revokes the token.
    Clean,
    /// This cutoff revokes the token (exact).
    Revoked(&'a Cutoff),
    /// An exact key of the token may be revoked: confirm with the node, and
    /// treat it as revoked if the node cannot answer.
    Maybe,
}

/// A filter cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The fuse filter construction failed (xorf gives up after many seeds).
    #[error("the fuse filter could not be built: {0}")]
    Fuse(&'static str),
    /// The cursor, an issuer or a key is longer than the format allows.
    #[error("{0} is {1} bytes; the format allows 65,535")]
    TooLong(&'static str, usize),
    /// More cutoffs or fingerprints than the format counts.
    #[error("too many {0} for the format")]
    TooMany(&'static str),
}

/// A cutoff's kind, issuer and key.
type CutoffKey = (CutoffKind, Option<String>, String);

/// Collects records, then builds an [`EdgeFilter`].
#[derive(Default)]
pub struct FilterBuilder {
    keys: Vec<u64>,
    /// Per key: the highest cutoff, its record and revocation time, and the
    /// latest expiry.
    cutoffs: HashMap<CutoffKey, (u64, RecordId, u64, u64)>,
}

impl FilterBuilder {
    /// An empty builder.
    pub fn new() -> FilterBuilder {
        FilterBuilder::default()
    }

    /// Reserves room for `n` more exact keys.
    pub fn reserve(&mut self, n: usize) {
        self.keys.reserve(n);
    }

    /// Adds what record `id` revokes (revoked at `revoked_at`, expiring at
    /// `expires_at`). A `peer` record revokes no token and is left out.
    pub fn add(&mut self, id: RecordId, target: &Target, expires_at: u64, revoked_at: u64) {
        if let Some(k) = key::target_key(target) {
            self.keys.push(k);
        } else if let Some(c) = Cutoff::of(target, expires_at, id, revoked_at) {
            // A bulk scope reduces to the highest cutoff per key.
            let e = self.cutoffs.entry((c.kind, c.iss, c.key)).or_insert((
                c.before,
                c.id,
                c.revoked_at,
                c.expires_at,
            ));
            if c.before > e.0 {
                (e.0, e.1, e.2) = (c.before, c.id, c.revoked_at);
            }
            e.3 = e.3.max(c.expires_at);
        }
    }

    /// Adds a whole record.
    pub fn add_record(&mut self, record: &Record) {
        self.add(
            record.id,
            &record.target,
            record.expires_at,
            record.revoked_at(),
        );
    }

    /// Exact keys added so far (before duplicates are removed).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Builds the filter, taken at watch cursor `cursor`.
    pub fn build(mut self, cursor: &str) -> Result<EdgeFilter, BuildError> {
        // xorf requires distinct keys, and the same key comes twice when two
        // records revoke the same thing.
        self.keys.sort_unstable();
        self.keys.dedup();
        let fuse = if self.keys.is_empty() {
            None
        } else {
            Some(BinaryFuse16::try_from(&self.keys).map_err(BuildError::Fuse)?)
        };
        let mut cutoffs: Vec<Cutoff> = self
            .cutoffs
            .into_iter()
            .map(
                |((kind, iss, key), (before, id, revoked_at, expires_at))| Cutoff {
                    kind,
                    iss,
                    key,
                    before,
                    expires_at,
                    id,
                    revoked_at,
                },
            )
            .collect();
        // A fixed order, so that the same records always encode alike.
        cutoffs.sort_by(|a, b| (a.kind, &a.iss, &a.key).cmp(&(b.kind, &b.iss, &b.key)));
        let filter = EdgeFilter::new(cursor.to_owned(), self.keys.len() as u64, fuse, cutoffs);
        codec::check_encodable(&filter)?;
        Ok(filter)
    }
}

/// A decoded or freshly built edge filter.
#[derive(Clone, Debug)]
pub struct EdgeFilter {
    cursor: String,
    keys: u64,
    fuse: Option<BinaryFuse16>,
    cutoffs: Vec<Cutoff>,
    /// Cutoff positions by key, one map per kind (in [`CutoffKind`] order),
    /// so that a lookup borrows the check's string.
    by_key: [HashMap<String, Vec<usize>>; 3],
}

impl EdgeFilter {
    fn new(
        cursor: String,
        keys: u64,
        fuse: Option<BinaryFuse16>,
        cutoffs: Vec<Cutoff>,
    ) -> EdgeFilter {
        let mut by_key: [HashMap<String, Vec<usize>>; 3] = Default::default();
        for (i, c) in cutoffs.iter().enumerate() {
            by_key[c.kind as usize]
                .entry(c.key.clone())
                .or_default()
                .push(i);
        }
        EdgeFilter {
            cursor,
            keys,
            fuse,
            cutoffs,
            by_key,
        }
    }

    /// The watch cursor the filter was taken at.
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// Distinct exact keys inserted.
    pub fn key_count(&self) -> u64 {
        self.keys
    }

    /// The bulk cutoffs.
    pub fn cutoffs(&self) -> &[Cutoff] {
        &self.cutoffs
    }

    /// Whether the fuse filter holds `key` (or a false positive).
    fn contains(&self, key: u64) -> bool {
        self.fuse.as_ref().is_some_and(|f| f.contains(&key))
    }

    /// Answers a check: a cutoff first (exact), then the exact keys.
    pub fn check(&self, check: &Check<'_>) -> Verdict<'_> {
        let bulk = [
            (CutoffKind::Subject, check.sub),
            (CutoffKind::Client, check.client_id),
            (CutoffKind::Issuer, check.iss),
        ];
        for (kind, value) in bulk {
            let Some(value) = value else { continue };
            if let Some(found) = self.by_key[kind as usize].get(value) {
                if let Some(c) = found
                    .iter()
                    .filter_map(|i| self.cutoffs.get(*i))
                    .find(|c| c.revokes(check))
                {
                    return Verdict::Revoked(c);
                }
            }
        }
        match key::probe(check, |k| self.contains(k)) {
            key::Probe::Clean => Verdict::Clean,
            key::Probe::Maybe => Verdict::Maybe,
        }
    }

    /// Whether `key` in its raw 64-bit form is in the fuse filter: for
    /// measuring the false-positive rate with random keys.
    pub fn contains_raw(&self, key: u64) -> bool {
        self.contains(key)
    }

    /// Bytes of the fuse filter's fingerprints.
    pub fn filter_bytes(&self) -> usize {
        self.fuse.as_ref().map_or(0, |f| f.fingerprints.len() * 2)
    }

    /// The binary form (see the crate docs).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Reads the binary form, refusing anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<EdgeFilter, DecodeError> {
        codec::decode(bytes)
    }
}

#[cfg(test)]
mod tests;
