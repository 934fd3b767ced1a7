//! On-disk encodings: fixed-width big-endian keys, so that sled's byte order is
//! numeric order, and bincode values with a size limit on every decode.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use veto_core::{Hlc, Record, RecordId, Target};

use crate::error::StoreError;

/// The largest encoded record. Every key is capped at 512 bytes by veto-core and a
/// record holds a handful of them, so a legitimate record is a few KiB at most.
pub(crate) const RECORD_LIMIT: usize = 65_536;
/// The largest metadata value (the frontier can hold many ranges after a long
/// partition with out-of-order delivery).
pub(crate) const META_LIMIT: usize = 64 * 1024 * 1024;

fn record_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RECORD_LIMIT>()
}

fn meta_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<META_LIMIT>()
}

/// `prefix BE ++ chunk key`: the key of a secondary index ordered by `prefix`
/// (an HLC stamp or an expiry time).
pub(crate) fn ordered_key(prefix: u64, chunk: &[u8; 16]) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&prefix.to_be_bytes());
    k[8..].copy_from_slice(chunk);
    k
}

/// Splits a secondary-index key into its prefix and chunk key.
pub(crate) fn split_ordered_key(
    tree: &'static str,
    key: &[u8],
) -> Result<(u64, [u8; 16]), StoreError> {
    if key.len() != 24 {
        return Err(corrupt(
            tree,
            key,
            format!("key is {} bytes, not 24", key.len()),
        ));
    }
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&key[..8]);
    let mut chunk = [0u8; 16];
    chunk.copy_from_slice(&key[8..]);
    Ok((u64::from_be_bytes(prefix), chunk))
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Renders a key for an error message: chunk keys as `origin/block`.
pub(crate) fn show_key(key: &[u8]) -> String {
    let chunk = |k: &[u8]| match (be_u64(&k[..8]), be_u64(&k[8..16])) {
        (Some(o), Some(b)) => format!("chunk {o:016x}/{b}"),
        _ => hex(k),
    };
    match key.len() {
        16 => chunk(key),
        24 => match be_u64(&key[..8]) {
            Some(p) => format!("{p} -> {}", chunk(&key[8..])),
            None => hex(key),
        },
        _ => String::from_utf8(key.to_vec()).unwrap_or_else(|_| hex(key)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn corrupt(tree: &'static str, key: &[u8], detail: String) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: show_key(key),
        detail,
    }
}

fn corrupt_record(id: RecordId, detail: String) -> StoreError {
    StoreError::Corrupt {
        tree: "records",
        key: format!("record {id}"),
        detail,
    }
}

/// Encodes a record, refusing one that could not be decoded again.
pub(crate) fn encode_record(record: &Record) -> Result<Vec<u8>, StoreError> {
    let bytes =
        bincode::serde::encode_to_vec(record, record_config()).map_err(|e| StoreError::Encode {
            what: format!("record {}", record.id),
            detail: e.to_string(),
        })?;
    if bytes.len() > RECORD_LIMIT {
        return Err(StoreError::TooLarge {
            what: format!("record {}", record.id),
            len: bytes.len(),
            limit: RECORD_LIMIT,
        });
    }
    Ok(bytes)
}

/// Decodes the record stored as `id`, checking that it is that record.
pub(crate) fn decode_record(id: RecordId, bytes: &[u8]) -> Result<Record, StoreError> {
    let (record, used): (Record, usize) = bincode::serde::decode_from_slice(bytes, record_config())
        .map_err(|e| corrupt_record(id, e.to_string()))?;
    if used != bytes.len() {
        return Err(corrupt_record(
            id,
            format!("{} trailing bytes", bytes.len() - used),
        ));
    }
    if record.id != id {
        return Err(corrupt_record(
            id,
            format!("value holds record {}", record.id),
        ));
    }
    Ok(record)
}

/// The leading fields of an encoded [`Record`]. bincode writes fields in order,
/// so decoding this reads the target and stops before the audit notes.
#[derive(Deserialize)]
struct Leading {
    id: RecordId,
    _hlc: Hlc,
    target: Target,
}

/// Decodes only the target of the record stored as `id`: what the lookup index
/// needs, without allocating the audit notes.
pub(crate) fn decode_target(id: RecordId, bytes: &[u8]) -> Result<Target, StoreError> {
    let (leading, _): (Leading, usize) = bincode::serde::decode_from_slice(bytes, record_config())
        .map_err(|e| corrupt_record(id, e.to_string()))?;
    if leading.id != id {
        return Err(corrupt_record(
            id,
            format!("value holds record {}", leading.id),
        ));
    }
    Ok(leading.target)
}

/// Encodes a metadata value.
pub(crate) fn encode_meta<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, meta_config()).map_err(|e| StoreError::Encode {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

/// Decodes a metadata value stored under `key` of `tree`.
pub(crate) fn decode_meta<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, meta_config())
        .map_err(|e| corrupt(tree, key, e.to_string()))?;
    if used != bytes.len() {
        return Err(corrupt(
            tree,
            key,
            format!("{} trailing bytes", bytes.len() - used),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use veto_core::NodeId;

    fn record() -> Record {
        Record {
            id: RecordId {
                origin: NodeId::new(5),
                seq: 77,
            },
            hlc: Hlc::from_unix(Duration::from_secs(1_700_000_000)),
            target: Target::Session {
                iss: Some("https://idp".into()),
                sid: "s-1".into(),
            },
            expires_at: 1_700_003_600,
            reason: "compromised".into(),
            actor: "ops".into(),
        }
    }

    #[test]
    fn records_round_trip_and_the_target_decodes_alone() {
        let r = record();
        let bytes = encode_record(&r).unwrap();
        assert_eq!(decode_record(r.id, &bytes).unwrap(), r);
        assert_eq!(decode_target(r.id, &bytes).unwrap(), r.target);
        let other = RecordId { seq: 78, ..r.id };
        assert!(decode_record(other, &bytes).is_err());
        assert!(decode_target(other, &bytes).is_err());
        for cut in 0..bytes.len() {
            assert!(decode_record(r.id, &bytes[..cut]).is_err());
        }
    }

    #[test]
    fn a_peer_record_round_trips() {
        let r = Record {
            target: Target::Peer {
                name: Some("c".into()),
                cert_sha256: Some([7; 32]),
            },
            ..record()
        };
        let bytes = encode_record(&r).unwrap();
        assert_eq!(decode_record(r.id, &bytes).unwrap(), r);
        assert_eq!(decode_target(r.id, &bytes).unwrap(), r.target);
    }

    #[test]
    fn oversized_records_are_refused() {
        let mut r = record();
        r.reason = "x".repeat(RECORD_LIMIT);
        assert!(matches!(
            encode_record(&r),
            Err(StoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn ordered_keys_sort_by_prefix_then_chunk() {
        let a = ordered_key(1, &[9u8; 16]);
        let b = ordered_key(2, &[0u8; 16]);
        assert!(a < b);
        assert_eq!(split_ordered_key("t", &a).unwrap(), (1, [9u8; 16]));
        assert!(split_ordered_key("t", &a[..20]).is_err());
    }
}
