//! Building an index from millions of keys at once, as a restart from a
//! checkpoint does.
//!
//! Inserted in the order they come (record id order), keys land at random
//! places of a table far larger than the caches, and each insert waits on
//! memory. Collected first and inserted in the order of their table
//! positions, they walk the table front to back instead: a restart with ten
//! million records spends a fraction of the time.

use super::maps::Entry;
use super::{IndexError, IndexKey, IndexMap, LookupIndex};
use crate::id::RecordId;

/// Collects keys, then builds the index ([`BulkLoad::finish`]).
pub struct BulkLoad {
    index: LookupIndex,
    /// Exact-map entries (tokens, sessions, keys) waiting to be inserted.
    pending: [Vec<(u64, Entry)>; 3],
}

impl BulkLoad {
    /// A load of about `tokens` token records.
    pub fn new(tokens: usize) -> BulkLoad {
        BulkLoad {
            index: LookupIndex::new(),
            pending: [Vec::with_capacity(tokens), Vec::new(), Vec::new()],
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
        self.pending[slot].push((key.key, Entry { iss: key.iss, rec }));
        Ok(())
    }

    /// Inserts what was collected and returns the index.
    pub fn finish(mut self) -> LookupIndex {
        let [tokens, sessions, keys] = std::mem::take(&mut self.pending);
        let index = &mut self.index;
        for (mut pending, map) in [
            (tokens, &mut index.tokens),
            (sessions, &mut index.sessions),
            (keys, &mut index.keys),
        ] {
            map.reserve(pending.len());
            // A key's table position is its low bits under the table's mask,
            // and no table has more than 2^32 buckets: in the order of the
            // low 32 bits, positions only grow.
            pending.sort_unstable_by_key(|(key, _)| *key as u32);
            for (key, entry) in pending {
                map.insert(key, entry, &mut index.contexts);
            }
        }
        self.index
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
}
