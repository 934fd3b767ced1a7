//! The set digest depends only on the live records: not on the order they were
//! learnt in, nor on records that came and went.

mod common;

use std::collections::BTreeSet;

use common::{any_id, record_for};
use proptest::prelude::*;
use veto_core::{RecordId, RevocationSet, SetDigest};

fn set_of(ids: &[RecordId]) -> RevocationSet {
    let mut set = RevocationSet::new();
    for id in ids {
        set.insert(record_for(*id));
    }
    set
}

fn digest_from_scratch(set: &RevocationSet) -> SetDigest {
    let mut d = SetDigest::new();
    for r in set.iter() {
        d.add(&r.fingerprint());
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn equal_live_sets_have_equal_digests(
        ids in prop::collection::vec(any_id(), 0..30),
        transient in prop::collection::btree_set(any_id(), 0..10),
        seed in any::<u64>(),
    ) {
        let live: BTreeSet<RecordId> = ids.iter().copied().filter(|id| !transient.contains(id)).collect();
        let a = set_of(&live.iter().copied().collect::<Vec<_>>());

        // Another replica learns the same live records in another order, with
        // duplicates, and also records that it later prunes.
        let mut order: Vec<RecordId> = ids.iter().chain(&transient).copied().collect();
        order.extend(ids.iter().rev());
        shuffle(&mut order, seed);
        let mut b = set_of(&order);
        for id in &transient {
            b.prune(*id);
        }

        prop_assert_eq!(a.digest(), b.digest());
        prop_assert_eq!(a.digest().to_hex(), b.digest().to_hex());
        prop_assert_eq!(a.digest().count(), live.len() as u64);
        prop_assert_eq!(a.digest(), digest_from_scratch(&a));
        prop_assert_eq!(b.digest(), digest_from_scratch(&b));
    }

    #[test]
    fn insert_then_prune_returns_to_the_empty_digest(
        ids in prop::collection::btree_set(any_id(), 0..30),
        seed in any::<u64>(),
    ) {
        let mut order: Vec<RecordId> = ids.iter().copied().collect();
        let mut set = set_of(&order);
        shuffle(&mut order, seed);
        for id in &order {
            prop_assert!(set.prune(*id).is_some());
        }
        prop_assert!(set.is_empty());
        prop_assert_eq!(set.digest(), SetDigest::new());
        prop_assert_eq!(set.digest().count(), 0);
    }

    /// The digest is only useful if different live sets tell apart.
    #[test]
    fn different_live_sets_have_different_digests(
        a in prop::collection::btree_set(any_id(), 0..20),
        b in prop::collection::btree_set(any_id(), 0..20),
    ) {
        let da = set_of(&a.iter().copied().collect::<Vec<_>>()).digest();
        let db = set_of(&b.iter().copied().collect::<Vec<_>>()).digest();
        prop_assert_eq!(a == b, da == db);
    }
}

#[test]
fn a_record_differing_in_any_field_changes_the_digest() {
    let base = record_for(common::id(0, 1));
    let mut variants = vec![base.clone()];
    let mut r = base.clone();
    r.hlc.0 += 1;
    variants.push(r);
    let mut r = base.clone();
    r.expires_at += 1;
    variants.push(r);
    let mut r = base.clone();
    r.reason.push('!');
    variants.push(r);
    let mut r = base.clone();
    r.actor.push('!');
    variants.push(r);
    let mut r = base.clone();
    r.id.seq += 1;
    variants.push(r);
    // Text moved from one field to the next must not hash alike.
    let mut r = base.clone();
    r.actor = format!("{}{}", r.reason, r.actor);
    r.reason.clear();
    variants.push(r);
    let fingerprints: BTreeSet<[u8; 32]> = variants.iter().map(|r| r.fingerprint()).collect();
    assert_eq!(fingerprints.len(), variants.len());
}

fn shuffle(items: &mut [RecordId], seed: u64) {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    items.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
}
