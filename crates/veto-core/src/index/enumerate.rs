//! Which records the index holds under a key, an issuer or a map: what the
//! audit trail asks for when it is filtered by key or by scope, answered
//! from memory instead of a scan of the store.

use std::collections::BTreeMap;

use super::maps::RecordRef;
use super::{
    iss_digest, key_digest, IndexMap, LookupIndex, TAG_CLIENT, TAG_ISS, TAG_JTI, TAG_KID, TAG_SID,
    TAG_SUB, TAG_TOKEN_SHA,
};
use crate::id::RecordId;

impl LookupIndex {
    /// Every record with a key field (jti, the hex SHA-256 of an opaque
    /// token, sid, kid, sub, client_id, or the issuer of an issuer cutoff)
    /// whose digest is that of `key`. A superset: a digest collision adds a
    /// record the caller's own filter then drops. Records that merely carry
    /// `key` as their issuer are not found here: see [`LookupIndex::qualifies`].
    pub fn ids_for_key(&self, key: &str) -> Vec<RecordId> {
        let bytes = key.as_bytes();
        let mut refs = Vec::new();
        refs.extend(self.tokens.all(key_digest(TAG_JTI, bytes), &self.contexts));
        if let Ok(sha) = <[u8; 32]>::try_from(hex::decode(key).unwrap_or_default()) {
            refs.extend(
                self.tokens
                    .all(key_digest(TAG_TOKEN_SHA, &sha), &self.contexts),
            );
        }
        refs.extend(
            self.sessions
                .all(key_digest(TAG_SID, bytes), &self.contexts),
        );
        refs.extend(self.keys.all(key_digest(TAG_KID, bytes), &self.contexts));
        refs.extend(self.subjects.all(key_digest(TAG_SUB, bytes)));
        refs.extend(self.clients.all(key_digest(TAG_CLIENT, bytes)));
        refs.extend(self.issuers.all(key_digest(TAG_ISS, bytes)));
        refs.into_iter().map(|r| self.record_id(r)).collect()
    }

    /// Whether any record is limited to the issuer `iss`: then the records
    /// "with key `iss`" include every token of that issuer, which no map
    /// lists by issuer.
    pub fn qualifies(&self, iss: &str) -> bool {
        let digest = iss_digest(Some(iss));
        self.contexts.issuers().any(|d| d == digest)
            || [&self.tokens, &self.sessions, &self.keys]
                .iter()
                .any(|m| m.spilled_issuers().any(|d| d == digest))
            || [&self.subjects, &self.clients]
                .iter()
                .any(|m| m.issuers().any(|d| d == digest))
    }

    /// How many records one map holds.
    pub fn map_len(&self, map: IndexMap) -> usize {
        match map {
            IndexMap::Tokens => self.tokens.len(),
            IndexMap::Sessions => self.sessions.len(),
            IndexMap::Keys => self.keys.len(),
            IndexMap::Subjects => self.subjects.len(),
            IndexMap::Clients => self.clients.len(),
            IndexMap::Issuers => self.issuers.len(),
        }
    }

    /// Every record of one map, per origin, highest seq first.
    pub fn ids_by_origin(&self, map: IndexMap) -> Vec<Vec<RecordId>> {
        let refs: Vec<RecordRef> = match map {
            IndexMap::Tokens => self.tokens.every(&self.contexts),
            IndexMap::Sessions => self.sessions.every(&self.contexts),
            IndexMap::Keys => self.keys.every(&self.contexts),
            IndexMap::Subjects => self.subjects.every(),
            IndexMap::Clients => self.clients.every(),
            IndexMap::Issuers => self.issuers.every(),
        };
        let mut by_origin: BTreeMap<u16, Vec<RecordId>> = BTreeMap::new();
        for r in refs {
            by_origin
                .entry(r.slot())
                .or_default()
                .push(self.record_id(r));
        }
        by_origin
            .into_values()
            .map(|mut ids| {
                ids.sort_unstable_by_key(|id| std::cmp::Reverse(id.seq));
                ids.dedup();
                ids
            })
            .collect()
    }
}
