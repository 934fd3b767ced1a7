//! The frontier as sent on the wire: bounded, and safe to truncate.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use veto_core::{Frontier, NodeId};

use super::{Holding, OriginRanges, MAX_SUMMARY_RANGES};

/// A fixed-size digest of what a node covers and holds: see [`state_digest`].
pub type StateDigest = [u8; 16];

/// The digest two nodes compare in [`super::Message::Digest`]: the first 16
/// bytes of SHA-256 over every range of `frontier` (not truncated) and every
/// per-origin holding, in order. Equal exactly when both cover the same seqs
/// and hold the same records, but for a collision of 128 bits; it depends on
/// nothing else (not on which node computes it, nor on the order records
/// arrived in), since frontiers and holdings are kept in origin order.
pub fn state_digest(frontier: &Frontier, holdings: &[(NodeId, Holding)]) -> StateDigest {
    let mut hash = Sha256::new();
    for (origin, set) in frontier.origins() {
        hash.update(b"o");
        hash.update(origin.get().to_le_bytes());
        for r in set.ranges() {
            hash.update(r.start().to_le_bytes());
            hash.update(r.end().to_le_bytes());
        }
    }
    for (origin, holding) in holdings {
        hash.update(b"h");
        hash.update(origin.get().to_le_bytes());
        hash.update(holding.count.to_le_bytes());
        hash.update(holding.sum.to_le_bytes());
    }
    let mut digest = StateDigest::default();
    digest.copy_from_slice(&hash.finalize()[..16]);
    digest
}

/// A node's durable frontier as sent in [`super::Message::Frontier`]: per origin,
/// the seq ranges it covers.
///
/// A summary never claims more than the node covers. When the frontier has more
/// than [`MAX_SUMMARY_RANGES`] ranges the summary keeps only some of them
/// (`truncated` is then set): the peer then believes this node lacks more than
/// it does and may resend records, which are dropped as duplicates. Nothing is
/// ever lost to truncation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontierSummary {
    /// Per origin, covered seq ranges.
    pub origins: OriginRanges,
    /// Whether ranges were left out to stay within the limit.
    pub truncated: bool,
}

impl FrontierSummary {
    /// The summary of `frontier`, truncated to [`MAX_SUMMARY_RANGES`] ranges.
    pub fn of(frontier: &Frontier) -> FrontierSummary {
        FrontierSummary::with_limit(frontier, MAX_SUMMARY_RANGES)
    }

    /// The summary of `frontier` with at most `limit` ranges.
    ///
    /// Every origin first gets its lowest range (normally `1..=n`, the bulk of
    /// its log), in origin order while the budget lasts; what budget remains
    /// then goes to further ranges. Each origin keeps a prefix of its ranges, so
    /// the summary is always a subset of the frontier.
    pub fn with_limit(frontier: &Frontier, limit: usize) -> FrontierSummary {
        let counts: Vec<usize> = frontier.origins().map(|(_, s)| s.range_count()).collect();
        let total: usize = counts.iter().sum();
        let mut take = counts.clone();
        if total > limit {
            let mut budget = limit;
            for t in take.iter_mut() {
                *t = usize::from(budget > 0);
                budget -= *t;
            }
            for (t, count) in take.iter_mut().zip(&counts) {
                let extra = (count - *t).min(budget);
                *t += extra;
                budget -= extra;
            }
        }
        let origins = frontier
            .origins()
            .zip(take)
            .filter(|(_, t)| *t > 0)
            .map(|((origin, set), t)| (origin, set.ranges().take(t).collect()))
            .collect();
        FrontierSummary {
            origins,
            truncated: total > limit,
        }
    }

    /// The frontier this summary describes. Invalid ranges (see
    /// [`super::Message::validate`]) are ignored.
    pub fn to_frontier(&self) -> Frontier {
        let mut frontier = Frontier::new();
        for (origin, ranges) in &self.origins {
            for r in ranges {
                if *r.start() >= 1 && r.start() <= r.end() {
                    frontier.insert_range(*origin, r.clone());
                }
            }
        }
        frontier
    }

    /// How many ranges the summary lists.
    pub fn range_count(&self) -> usize {
        self.origins.iter().map(|(_, r)| r.len()).sum()
    }
}
