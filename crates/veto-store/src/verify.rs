//! A full consistency check of a data directory, for operators and tests.

use std::collections::BTreeMap;

use veto_core::SetDigest;

use crate::chunk::{Bounds, ChunkRef};
use crate::codec::{decode_record, ordered_key, show_key, split_ordered_key};
use crate::error::StoreError;
use crate::store::{Store, TREE_BY_EXPIRY, TREE_BY_HLC};

/// What [`Store::verify`] read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Stored records, all decoded.
    pub records: u64,
    /// Chunks holding them.
    pub chunks: u64,
}

fn mismatch(tree: &'static str, key: &[u8], detail: &str) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: show_key(key),
        detail: detail.to_owned(),
    }
}

impl Store {
    /// Reads everything and checks that it agrees: every record decodes, the
    /// secondary indexes list exactly the stored chunks with their current
    /// bounds, the frontier covers every stored record, and the persisted digest
    /// and count match the records. Holds the write lock throughout, so writes
    /// wait; reads do not. Returns the first disagreement as
    /// [`StoreError::Corrupt`].
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let state = self.state()?;
        let mut report = VerifyReport::default();
        let mut digest = SetDigest::new();
        let mut bounds: BTreeMap<[u8; 16], Bounds> = BTreeMap::new();
        let trees = self.trees()?;
        let mut per_origin: BTreeMap<veto_core::NodeId, SetDigest> = BTreeMap::new();
        for entry in trees.records.iter() {
            let (key, value) = entry?;
            self.touch(&key)?;
            let chunk = ChunkRef::parse(&key, &value)?;
            for slot in chunk.slots() {
                let id = chunk.id(slot);
                let record = decode_record(id, chunk.bytes(slot))?;
                if record.hlc.0 != slot.hlc || record.expires_at != slot.expires_at {
                    return Err(mismatch(
                        "records",
                        &key,
                        "slot table disagrees with a record",
                    ));
                }
                if !state.frontier.contains(id) {
                    return Err(mismatch("records", &key, "a stored record is not covered"));
                }
                digest.add(&record.fingerprint());
                per_origin
                    .entry(id.origin)
                    .or_default()
                    .add(&record.fingerprint());
                report.records += 1;
            }
            let mut k = [0u8; 16];
            k.copy_from_slice(&key);
            if let Some(b) = chunk.bounds() {
                bounds.insert(k, b);
            }
            report.chunks += 1;
        }
        if digest != state.digest {
            return Err(mismatch(
                "meta",
                b"digest",
                "digest does not match the records",
            ));
        }
        let kept: BTreeMap<_, _> = state
            .per_origin
            .iter()
            .filter(|(_, d)| d.count() > 0)
            .map(|(o, d)| (*o, *d))
            .collect();
        if kept != per_origin {
            return Err(mismatch(
                "meta",
                b"origin_digests",
                "per-origin digests do not match the records",
            ));
        }
        let mut expected_hlc: BTreeMap<[u8; 24], u64> = bounds
            .iter()
            .map(|(k, b)| (ordered_key(b.max_hlc, k), b.min_hlc))
            .collect();
        for entry in trees.by_hlc.iter() {
            let (key, value) = entry?;
            let (max, chunk) = split_ordered_key(TREE_BY_HLC, &key)?;
            let min = expected_hlc.remove(&ordered_key(max, &chunk));
            if min.map(u64::to_be_bytes).as_ref().map(<[u8; 8]>::as_slice) != Some(&value[..]) {
                return Err(mismatch(
                    TREE_BY_HLC,
                    &key,
                    "entry does not match its chunk",
                ));
            }
        }
        if let Some((key, _)) = expected_hlc.first_key_value() {
            return Err(mismatch(TREE_BY_HLC, key, "chunk missing from the index"));
        }
        let mut expected_exp: BTreeMap<[u8; 24], ()> = bounds
            .iter()
            .map(|(k, b)| (ordered_key(b.min_expiry, k), ()))
            .collect();
        for entry in trees.by_expiry.iter() {
            let (key, _) = entry?;
            let (min, chunk) = split_ordered_key(TREE_BY_EXPIRY, &key)?;
            if expected_exp.remove(&ordered_key(min, &chunk)).is_none() {
                return Err(mismatch(
                    TREE_BY_EXPIRY,
                    &key,
                    "entry does not match its chunk",
                ));
            }
        }
        if let Some((key, _)) = expected_exp.first_key_value() {
            return Err(mismatch(
                TREE_BY_EXPIRY,
                key,
                "chunk missing from the index",
            ));
        }
        Ok(report)
    }
}

impl Store {
    /// Recomputes the set digest and the per-origin digests from the records
    /// actually stored, and persists them, with `lost` more records counted
    /// as lost under covered ids (see [`Store::damage`]). For a database whose
    /// records and digests disagree (a damaged file that lost records but
    /// kept the metadata): the digests must tell peers what this store really
    /// holds, or they would never send the lost records back. Returns the
    /// digest before and after.
    pub fn rebuild_digests(&self, lost: u64) -> Result<(SetDigest, SetDigest), StoreError> {
        let mut state = self.write_state()?;
        let trees = self.trees()?;
        let per_origin = crate::read::origin_digests(&trees.records)?;
        let mut digest = SetDigest::new();
        for d in per_origin.values() {
            digest.merge(d);
        }
        let before = state.digest;
        let mut batch = sled::Batch::default();
        batch.insert(
            crate::store::KEY_DIGEST,
            crate::store::encode_digest(&digest)?,
        );
        batch.insert(
            crate::store::KEY_ORIGIN_DIGESTS,
            crate::store::encode_origin_digests(&per_origin)?,
        );
        let lost_now = self
            .inner
            .lost_records
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_add(lost);
        batch.insert(crate::store::KEY_LOST_RECORDS, &lost_now.to_be_bytes());
        trees.meta.apply_batch(batch)?;
        self.inner
            .lost_records
            .store(lost_now, std::sync::atomic::Ordering::Relaxed);
        state.digest = digest;
        state.per_origin = per_origin;
        drop(state);
        self.set_live(digest.count());
        self.flush()?;
        Ok((before, digest))
    }
}
