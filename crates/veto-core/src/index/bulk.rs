//! Building an index from millions of keys at once, as a restart from a
//! checkpoint does.
//!
//! Inserted in the order they come (record id order), keys land at random
//! places of a table far larger than the caches, and each insert waits on
//! memory. Collected first and inserted in the order of their home buckets,
//! they walk the table once, front to back, instead.
//!
//! The keys are collected in partitions by the top bits of their home bucket
//! in the table the expected count will make; each partition is sorted on a
//! second thread (small enough to sort in cache) while this one inserts the
//! partition before, and freed once inserted.

use super::maps::{Entry, ExactMap};
use super::{IndexError, IndexKey, IndexMap, LookupIndex};
use crate::id::RecordId;

/// A map's keys are collected in up to 2^8 partitions.
const PARTITION_BITS: u32 = 8;

/// Below this many keys, one thread sorts and inserts.
const THREADED_FROM: usize = 1 << 16;

/// Collects keys, then builds the index ([`BulkLoad::finish`]).
pub struct BulkLoad {
    index: LookupIndex,
    /// Exact-map entries (tokens, sessions, keys) waiting to be inserted.
    pending: [Pending; 3],
}

impl BulkLoad {
    /// A load of about `tokens` token records.
    pub fn new(tokens: usize) -> BulkLoad {
        BulkLoad {
            index: LookupIndex::new(),
            pending: [Pending::new(tokens), Pending::new(0), Pending::new(0)],
        }
    }

    /// Adds a record by its key. Cutoff keys, which are few, go in at once.
    pub fn push(&mut self, id: RecordId, key: IndexKey) -> Result<(), IndexError> {
        let slot = match key.map {
            IndexMap::Tokens => 0,
            IndexMap::Sessions => 1,
            IndexMap::Keys => 2,
            IndexMap::Subjects | IndexMap::Clients | IndexMap::Issuers => {
                return self.index.insert_key(id, key);
            }
        };
        let rec = self.index.record_ref(id)?;
        self.pending[slot].push(key.key, Entry { iss: key.iss, rec });
        Ok(())
    }

    /// Inserts what was collected and returns the index.
    pub fn finish(mut self) -> LookupIndex {
        let [tokens, sessions, keys] = std::mem::take(&mut self.pending);
        let index = &mut self.index;
        for (pending, map) in [
            (tokens, &mut index.tokens),
            (sessions, &mut index.sessions),
            (keys, &mut index.keys),
        ] {
            pending.insert_into(map, &mut index.contexts);
        }
        self.index
    }
}

/// One exact map's collected entries, partitioned by home bucket.
#[derive(Default)]
struct Pending {
    /// A key's partition is its bits `shift..` under `mask`.
    mask: u64,
    shift: u32,
    parts: Vec<Vec<(u64, Entry)>>,
}

impl Pending {
    fn new(expected: usize) -> Pending {
        let bits = expected_buckets(expected).trailing_zeros();
        let shift = bits.saturating_sub(PARTITION_BITS);
        let count = 1usize << (bits - shift);
        // A little over the even share, so that few partitions ever grow.
        let each = expected / count + expected / count / 16;
        Pending {
            mask: (1u64 << bits) - 1,
            shift,
            parts: (0..count).map(|_| Vec::with_capacity(each)).collect(),
        }
    }

    fn push(&mut self, key: u64, entry: Entry) {
        let part = ((key & self.mask) >> self.shift) as usize;
        self.parts[part].push((key, entry));
    }

    /// Sorts each partition by home bucket in `map` and inserts it. If the
    /// table came out another size than expected, the order is no longer a
    /// single sweep, but every key is still inserted.
    fn insert_into(self, map: &mut ExactMap, contexts: &mut super::maps::Contexts) {
        let len = self.parts.iter().map(Vec::len).sum();
        map.reserve(len);
        let mask = map.buckets() as u64 - 1;
        let sort = move |mut part: Vec<(u64, Entry)>| {
            part.sort_unstable_by_key(|(key, _)| *key & mask);
            part
        };
        let insert = |part: Vec<(u64, Entry)>| {
            for (key, entry) in part {
                map.insert(key, entry, contexts);
            }
        };
        if len < THREADED_FROM {
            self.parts.into_iter().map(sort).for_each(insert);
            return;
        }
        std::thread::scope(|scope| {
            let (sorted, inbox) = std::sync::mpsc::sync_channel(2);
            let parts = self.parts;
            scope.spawn(move || {
                for part in parts {
                    if sorted.send(sort(part)).is_err() {
                        return;
                    }
                }
            });
            inbox.into_iter().for_each(insert);
        });
    }
}

/// The bucket count hashbrown gives a table for `n` entries: a power of two
/// at least 8/7 of `n`. Only an estimate (the real table decides the
/// order); a wrong one costs speed, not keys.
fn expected_buckets(n: usize) -> usize {
    match n {
        0..=3 => 4,
        4..=7 => 8,
        _ => (n.saturating_mul(8) / 7).next_power_of_two(),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Check;
    use crate::id::NodeId;
    use crate::record::Target;

    /// A bulk load answers every check as inserting one by one does.
    #[test]
    fn a_bulk_load_is_the_same_index() {
        let targets: Vec<Target> = (0..2_000u64)
            .map(|i| match i % 5 {
                0 => Target::Token {
                    iss: Some(format!("https://idp-{}", i % 3)),
                    jti: format!("j{}", i / 2),
                },
                1 => Target::Session {
                    iss: None,
                    sid: format!("s{i}"),
                },
                2 => Target::Key {
                    iss: Some("https://idp-0".into()),
                    kid: format!("k{}", i % 7),
                },
                3 => Target::Subject {
                    iss: None,
                    sub: format!("u{}", i % 11),
                    before: 1_000 + i,
                },
                _ => Target::TokenHash {
                    sha256: [i as u8; 32],
                },
            })
            .collect();
        let mut one_by_one = LookupIndex::new();
        let mut bulk = BulkLoad::new(0);
        for (i, t) in targets.iter().enumerate() {
            let id = RecordId {
                origin: NodeId::new(1 + i as u64 % 3),
                seq: i as u64 + 1,
            };
            one_by_one.insert(id, t).unwrap();
            bulk.push(id, IndexKey::of(t).unwrap()).unwrap();
        }
        let bulk = bulk.finish();
        assert_eq!(bulk.len(), one_by_one.len());
        for i in 0..2_000u64 {
            let (jti, sid, kid, sub) = (
                format!("j{i}"),
                format!("s{i}"),
                format!("k{}", i % 9),
                format!("u{}", i % 13),
            );
            for iss in [None, Some("https://idp-0"), Some("https://idp-2")] {
                let check = Check {
                    iss,
                    jti: Some(&jti),
                    sid: Some(&sid),
                    kid: Some(&kid),
                    sub: Some(&sub),
                    iat: Some(1_000 + i),
                    token_sha256: Some([i as u8; 32]),
                    ..Check::default()
                };
                let (a, b) = (one_by_one.check(&check), bulk.check(&check));
                assert_eq!(a.map(|h| h.scope), b.map(|h| h.scope), "{check:?}");
                assert_eq!(a.is_some(), b.is_some());
            }
        }
    }

    /// A load large enough to sort on a second thread holds every key,
    /// whether the expected count was right, far too small or far too large
    /// (the partitions then follow another table size than the real one).
    #[test]
    fn a_large_load_holds_every_key_whatever_was_expected() {
        let n = THREADED_FROM as u64 * 2;
        for expected in [n as usize, 10, 40 * n as usize] {
            let mut bulk = BulkLoad::new(expected);
            for seq in 1..=n {
                let target = Target::Token {
                    iss: None,
                    jti: format!("j{seq}"),
                };
                let id = RecordId {
                    origin: NodeId::new(4),
                    seq,
                };
                bulk.push(id, IndexKey::of(&target).unwrap()).unwrap();
            }
            let index = bulk.finish();
            assert_eq!(index.len(), n as usize, "expected {expected}");
            for seq in (1..=n).step_by(97) {
                let jti = format!("j{seq}");
                let check = Check {
                    jti: Some(&jti),
                    ..Check::default()
                };
                assert!(index.check(&check).is_some(), "j{seq}, expected {expected}");
            }
            let missing = Check {
                jti: Some("never"),
                ..Check::default()
            };
            assert!(index.check(&missing).is_none());
        }
    }
}
