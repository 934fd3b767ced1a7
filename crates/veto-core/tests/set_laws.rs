//! The revocation set is a CRDT: replicas that saw the same records and prunes,
//! in any order and any number of times, end up equal, and a pruned record never
//! comes back.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{any_id, any_step, any_steps, record_for, replica, Step};
use crdts::{CmRDT, CvRDT};
use proptest::prelude::*;
use veto_core::{Inserted, RecordId, RevocationSet, SetOp};

fn merged(a: &RevocationSet, b: &RevocationSet) -> RevocationSet {
    a.validate_merge(b)
        .expect("content is a function of the id, so replicas never conflict");
    let mut out = a.clone();
    out.merge(b.clone());
    out
}

fn live_ids(set: &RevocationSet) -> BTreeSet<RecordId> {
    set.iter().map(|r| r.id).collect()
}

fn pruned_ids(steps: &[Step]) -> BTreeSet<RecordId> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Prune(id) => Some(*id),
            Step::Add(_) => None,
        })
        .collect()
}

fn added_ids(steps: &[Step]) -> BTreeSet<RecordId> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Add(id) => Some(*id),
            Step::Prune(_) => None,
        })
        .collect()
}

fn op(step: &Step) -> SetOp {
    match step {
        Step::Add(id) => SetOp::Add(record_for(*id)),
        Step::Prune(id) => SetOp::Prune(*id),
    }
}

fn applied(ops: impl IntoIterator<Item = SetOp>) -> RevocationSet {
    let mut set = RevocationSet::new();
    for op in ops {
        set.validate_op(&op)
            .expect("content is a function of the id, so ops never conflict");
        set.apply(op);
    }
    set
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn merge_is_commutative(a in any_steps(), b in any_steps()) {
        let (a, b) = (replica(&a), replica(&b));
        let ab = merged(&a, &b);
        let ba = merged(&b, &a);
        prop_assert_eq!(ab.digest(), ba.digest());
        prop_assert_eq!(ab, ba);
    }

    #[test]
    fn merge_is_associative(a in any_steps(), b in any_steps(), c in any_steps()) {
        let (a, b, c) = (replica(&a), replica(&b), replica(&c));
        let left = merged(&merged(&a, &b), &c);
        let right = merged(&a, &merged(&b, &c));
        prop_assert_eq!(left.digest(), right.digest());
        prop_assert_eq!(left, right);
    }

    #[test]
    fn merge_is_idempotent(a in any_steps(), b in any_steps()) {
        let a = replica(&a);
        let aa = merged(&a, &a);
        prop_assert_eq!(aa.digest(), a.digest());
        prop_assert_eq!(&aa, &a);
        // Merging what is already merged in changes nothing either.
        let ab = merged(&a, &replica(&b));
        prop_assert_eq!(merged(&ab, &a), ab.clone());
        prop_assert_eq!(merged(&ab, &replica(&b)), ab);
    }

    /// Merge is union of what was added minus what was pruned anywhere, and the
    /// frontier covers both.
    #[test]
    fn merge_is_union_minus_prunes(a in any_steps(), b in any_steps()) {
        let ab = merged(&replica(&a), &replica(&b));
        let pruned: BTreeSet<_> = pruned_ids(&a).union(&pruned_ids(&b)).copied().collect();
        let added: BTreeSet<_> = added_ids(&a).union(&added_ids(&b)).copied().collect();
        let expected: BTreeSet<_> = added.difference(&pruned).copied().collect();
        prop_assert_eq!(live_ids(&ab), expected);
        for id in added.union(&pruned) {
            prop_assert!(ab.covers(*id));
        }
        prop_assert_eq!(ab.frontier().count() as usize, added.union(&pruned).count());
        prop_assert_eq!(ab.len(), ab.digest().count() as usize);
    }

    #[test]
    fn ops_commute(steps in any_steps(), seed in any::<u64>()) {
        let ops: Vec<SetOp> = steps.iter().map(op).collect();
        let in_order = applied(ops.clone());
        let shuffled = applied(shuffle(ops, seed));
        prop_assert_eq!(in_order.digest(), shuffled.digest());
        prop_assert_eq!(&in_order, &shuffled);
        // Op-based and state-based replication agree.
        prop_assert_eq!(in_order, replica(&steps));
    }

    #[test]
    fn ops_delivered_twice_change_nothing(steps in any_steps(), seed in any::<u64>()) {
        let ops: Vec<SetOp> = steps.iter().map(op).collect();
        let once = applied(ops.clone());
        let twice = applied(shuffle([ops.clone(), ops].concat(), seed));
        prop_assert_eq!(once.digest(), twice.digest());
        prop_assert_eq!(once, twice);
    }

    /// Replicas that each saw part of the ops, merged, equal one replica that saw
    /// all of them.
    #[test]
    fn partial_replicas_converge(steps in prop::collection::vec((any_step(), 0..3usize), 0..40)) {
        let mut replicas = vec![RevocationSet::new(); 3];
        for (step, r) in &steps {
            replicas[*r].apply(op(step));
        }
        let all = applied(steps.iter().map(|(s, _)| op(s)));
        let [a, b, c] = <[RevocationSet; 3]>::try_from(replicas).unwrap();
        prop_assert_eq!(merged(&merged(&a, &b), &c), all);
    }

    #[test]
    fn a_pruned_record_never_comes_back(
        mine in any_steps(),
        theirs in prop::collection::vec(any_steps(), 1..4),
        victim in any_id(),
    ) {
        let mut set = replica(&mine);
        // The victim may already be gone from this replica; either way it is
        // pruned now.
        set.insert(record_for(victim));
        set.prune(victim);
        prop_assert!(set.get(victim).is_none());
        // Every other replica holds the victim live.
        for steps in &theirs {
            let mut other = replica(steps);
            if !other.covers(victim) {
                other.insert(record_for(victim));
            }
            set.merge(other);
            prop_assert!(set.get(victim).is_none());
        }
        set.apply(SetOp::Add(record_for(victim)));
        prop_assert!(set.get(victim).is_none());
        prop_assert_eq!(set.insert(record_for(victim)), Inserted::AlreadyPruned);
        prop_assert!(set.covers(victim));
        prop_assert!(set.iter().all(|r| r.id != victim));
    }

    /// A replica that pruned a record passes the prune on through merge, even to
    /// one that still holds the record.
    #[test]
    fn a_prune_wins_over_a_live_copy(theirs in any_steps(), victim in any_id()) {
        let mut pruned = RevocationSet::new();
        pruned.insert(record_for(victim));
        pruned.prune(victim);
        let mut live = replica(&theirs);
        live.insert(record_for(victim));
        live.merge(pruned);
        prop_assert!(live.get(victim).is_none());
        prop_assert!(live.covers(victim));
    }

    #[test]
    fn prune_expired_prunes_exactly_the_expired(steps in any_steps(), now in 900u64..2_200, grace in 0u64..200) {
        let mut set = replica(&steps);
        let before: BTreeMap<RecordId, u64> = set.iter().map(|r| (r.id, r.expires_at)).collect();
        let gone: BTreeSet<RecordId> = set.prune_expired(now, grace).iter().map(|r| r.id).collect();
        for (id, expires_at) in before {
            let expired = expires_at + grace < now;
            prop_assert_eq!(gone.contains(&id), expired);
            prop_assert_eq!(set.get(id).is_some(), !expired);
            prop_assert!(set.covers(id));
        }
    }
}

/// A deterministic permutation, so that a failing case shrinks and replays.
fn shuffle<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    items.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    items
}
