//! Per-origin frontiers: which sequence numbers of each origin's log a node covers
//! (holds durably, or held and pruned after expiry).
//!
//! Two nodes exchange frontiers and each sends exactly the records the other lacks.
//! A frontier is a set of inclusive ranges, so the usual case (everything from 1 to
//! n) is one range whatever n is.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::id::{NodeId, RecordId};

/// A set of sequence numbers stored as disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqSet {
    // start -> end, inclusive.
    ranges: BTreeMap<u64, u64>,
}

impl SeqSet {
    /// An empty set.
    pub fn new() -> SeqSet {
        SeqSet::default()
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, end)| *end >= seq)
    }

    /// Adds one number; returns whether it was new.
    pub fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        self.insert_range(seq, seq);
        true
    }

    /// Adds every number in `start..=end`.
    pub fn insert_range(&mut self, mut start: u64, mut end: u64) {
        if start > end {
            return;
        }
        // Absorb a range that ends at or just before `start`.
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e.saturating_add(1) >= start {
                start = s;
                end = end.max(e);
            }
        }
        // Absorb every range that starts inside or just after the new one.
        let absorbed: Vec<(u64, u64)> = self
            .ranges
            .range(start..=end.saturating_add(1))
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in absorbed {
            self.ranges.remove(&s);
            end = end.max(e);
        }
        self.ranges.insert(start, end);
    }

    /// The highest `n` such that all of `1..=n` is in the set (0 if 1 is missing).
    pub fn contiguous(&self) -> u64 {
        match self.ranges.first_key_value() {
            Some((1, end)) => *end,
            _ => 0,
        }
    }

    /// The largest number in the set.
    pub fn max(&self) -> Option<u64> {
        self.ranges.last_key_value().map(|(_, e)| *e)
    }

    /// How many numbers are in the set, saturating at `u64::MAX`: a peer may
    /// claim ranges as wide as it likes, and a count must not overflow.
    pub fn count(&self) -> u64 {
        self.ranges
            .iter()
            .fold(0u64, |n, (s, e)| n.saturating_add(range_len(*s, *e)))
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        self.ranges.iter().map(|(s, e)| *s..=*e)
    }

    /// How many ranges the set is made of.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// Builds a set from ranges in any order.
    pub fn from_ranges(ranges: impl IntoIterator<Item = RangeInclusive<u64>>) -> SeqSet {
        let mut set = SeqSet::new();
        for r in ranges {
            set.insert_range(*r.start(), *r.end());
        }
        set
    }

    /// The numbers in `self` that are not in `other`, as ranges.
    pub fn difference(&self, other: &SeqSet) -> Vec<RangeInclusive<u64>> {
        let mut out = Vec::new();
        for (&s, &e) in &self.ranges {
            let mut cursor = s;
            // Ranges of `other` that may overlap [s, e]: the one starting at or
            // before s, then every one starting inside.
            let before = other.ranges.range(..s).next_back().map(|(a, b)| (*a, *b));
            let inside = other.ranges.range(s..=e).map(|(a, b)| (*a, *b));
            for (os, oe) in before.into_iter().chain(inside) {
                if oe < cursor {
                    continue;
                }
                if os > cursor {
                    out.push(cursor..=(os - 1).min(e));
                }
                cursor = match oe.checked_add(1) {
                    Some(c) => c,
                    None => return out,
                };
                if cursor > e {
                    break;
                }
            }
            if cursor <= e {
                out.push(cursor..=e);
            }
        }
        out
    }

    /// Adds every number of `other`.
    pub fn union_with(&mut self, other: &SeqSet) {
        for r in other.ranges() {
            self.insert_range(*r.start(), *r.end());
        }
    }
}

/// How many numbers `start..=end` holds, saturating: `0..=u64::MAX` holds 2^64.
fn range_len(start: u64, end: u64) -> u64 {
    end.saturating_sub(start).saturating_add(1)
}

/// What one node covers of every origin's log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    origins: BTreeMap<NodeId, SeqSet>,
}

/// Records one frontier covers and another lacks: per origin, ranges of seqs.
pub type Missing = Vec<(NodeId, Vec<RangeInclusive<u64>>)>;

impl Frontier {
    /// An empty frontier.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Whether the record is covered.
    pub fn contains(&self, id: RecordId) -> bool {
        self.origins
            .get(&id.origin)
            .is_some_and(|s| s.contains(id.seq))
    }

    /// Covers a record; returns whether it was new.
    pub fn insert(&mut self, id: RecordId) -> bool {
        self.origins.entry(id.origin).or_default().insert(id.seq)
    }

    /// Covers a range of one origin's log.
    pub fn insert_range(&mut self, origin: NodeId, range: RangeInclusive<u64>) {
        self.origins
            .entry(origin)
            .or_default()
            .insert_range(*range.start(), *range.end());
    }

    /// The coverage of one origin.
    pub fn origin(&self, origin: NodeId) -> Option<&SeqSet> {
        self.origins.get(&origin)
    }

    /// Every origin with its coverage.
    pub fn origins(&self) -> impl Iterator<Item = (NodeId, &SeqSet)> {
        self.origins.iter().map(|(o, s)| (*o, s))
    }

    /// The highest seq covered for `origin` (0 if none).
    pub fn max_seq(&self, origin: NodeId) -> u64 {
        self.origins.get(&origin).and_then(SeqSet::max).unwrap_or(0)
    }

    /// What `self` covers that `other` lacks.
    pub fn missing_in(&self, other: &Frontier) -> Missing {
        let empty = SeqSet::new();
        self.origins
            .iter()
            .filter_map(|(origin, mine)| {
                let theirs = other.origins.get(origin).unwrap_or(&empty);
                let diff = mine.difference(theirs);
                (!diff.is_empty()).then_some((*origin, diff))
            })
            .collect()
    }

    /// How many records `self` covers that `other` lacks, saturating at
    /// `u64::MAX`.
    pub fn lag_of(&self, other: &Frontier) -> u64 {
        self.missing_in(other)
            .iter()
            .flat_map(|(_, ranges)| ranges.iter().map(|r| range_len(*r.start(), *r.end())))
            .fold(0u64, u64::saturating_add)
    }

    /// Covers everything `other` covers.
    pub fn union_with(&mut self, other: &Frontier) {
        for (origin, set) in &other.origins {
            self.origins.entry(*origin).or_default().union_with(set);
        }
    }

    /// Total number of seqs covered, saturating at `u64::MAX`.
    pub fn count(&self) -> u64 {
        self.origins
            .values()
            .map(SeqSet::count)
            .fold(0u64, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set_of(v: &BTreeSet<u64>) -> SeqSet {
        let mut s = SeqSet::new();
        for x in v {
            s.insert(*x);
        }
        s
    }

    proptest! {
        #[test]
        fn seqset_behaves_like_a_set(a in prop::collection::btree_set(1u64..200, 0..80),
                                      b in prop::collection::btree_set(1u64..200, 0..80)) {
            let (sa, sb) = (set_of(&a), set_of(&b));
            for x in 0..210 {
                prop_assert_eq!(sa.contains(x), a.contains(&x));
            }
            prop_assert_eq!(sa.count(), a.len() as u64);
            let diff: BTreeSet<u64> = sa.difference(&sb).into_iter().flatten().collect();
            let expected: BTreeSet<u64> = a.difference(&b).copied().collect();
            prop_assert_eq!(diff, expected);
            let contiguous = (1..).take_while(|x| a.contains(x)).count() as u64;
            prop_assert_eq!(sa.contiguous(), contiguous);
            let mut u = sa.clone();
            u.union_with(&sb);
            let expected_union: BTreeSet<u64> = a.union(&b).copied().collect();
            prop_assert_eq!(u, set_of(&expected_union));
        }
    }

    /// Counts over ranges a peer claims must not overflow, however wide.
    #[test]
    fn counts_saturate_instead_of_overflowing() {
        let mut everything = Frontier::new();
        everything.insert_range(NodeId::new(1), 1..=u64::MAX);
        everything.insert_range(NodeId::new(2), 1..=u64::MAX);
        assert_eq!(everything.count(), u64::MAX);
        assert_eq!(everything.lag_of(&Frontier::new()), u64::MAX);
        assert_eq!(SeqSet::from_ranges([0..=u64::MAX]).count(), u64::MAX);
        assert_eq!(SeqSet::from_ranges([1..=u64::MAX]).count(), u64::MAX);
        assert_eq!(SeqSet::from_ranges([3..=5, 9..=9]).count(), 4);
    }

    #[test]
    fn a_long_log_is_one_range() {
        let mut s = SeqSet::new();
        s.insert_range(1, 1_000_000);
        s.insert(1_000_001);
        assert_eq!(s.range_count(), 1);
        assert_eq!(s.contiguous(), 1_000_001);
    }
}
