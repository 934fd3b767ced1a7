//! Repairing data that a node covers but no longer holds.
//!
//! Frontiers alone cannot see it: a node that lost a record's data (a damaged
//! disk, or a record dropped by a wrong clock in an older version) still covers
//! its id, so its lag is 0 and nobody sends the record again. Each `Frontier`
//! therefore carries a [`Holding`] per origin. When both sides cover exactly
//! the same seqs of an origin but their holdings differ in two frontiers in a
//! row, each side sends [`Message::Held`]: the seqs it holds with data. The
//! other streams back what it holds and the sender does not, through the
//! backlog stream, and the receiver restores what is not expired.
//!
//! Holdings also differ for a moment whenever one node has garbage-collected
//! an expired record and the other has not yet. Such an exchange finds nothing
//! to restore, so repeated exchanges for one origin back off, up to
//! [`MAX_BACKOFF_ROUNDS`] anti-entropy periods apart.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use veto_core::{NodeId, SeqSet};

use super::{Engine, Lane, Now, PeerKey, RecordSource};
use crate::proto::{Holding, Message, MAX_HELD_RANGES};

/// Frontiers in a row that must show a difference before a `Held` is sent,
/// so that a record on its way to disk on one side does not trigger one.
const STREAK: u32 = 2;
/// The first wait between two `Held` for one origin, in anti-entropy periods.
const FIRST_BACKOFF_ROUNDS: u32 = 2;
/// The longest wait between two `Held` for one origin, in anti-entropy periods.
pub(crate) const MAX_BACKOFF_ROUNDS: u32 = 64;

/// Per session and origin: how a holdings difference is being chased.
#[derive(Clone, Debug, Default)]
pub(crate) struct Chase {
    streak: u32,
    /// The wait before the next `Held`, in anti-entropy periods.
    backoff: u32,
    next_at: Duration,
    /// Where the next `Held` starts: a long log is described a window at a
    /// time.
    cursor: u64,
}

impl Engine {
    /// Compares the peer's holdings with this node's, for every origin both
    /// cover identically, and sends `Held` where they keep differing.
    pub(super) fn compare_holdings(
        &mut self,
        now: Now,
        peer: PeerKey,
        truncated: bool,
        theirs: &[(NodeId, Holding)],
        src: &(impl RecordSource + ?Sized),
    ) {
        if truncated {
            // Their coverage is not all there: nothing can be compared.
            return;
        }
        let Some(their_frontier) = self.sessions.get(&peer).and_then(|s| s.their.as_ref()) else {
            return;
        };
        let same_cover: Vec<(NodeId, bool)> = self
            .durable
            .origins()
            .map(|(origin, mine)| (origin, their_frontier.origin(origin) == Some(mine)))
            .collect();
        let mine: BTreeMap<NodeId, Holding> = src.holdings().into_iter().collect();
        let theirs: BTreeMap<NodeId, Holding> = theirs.iter().copied().collect();
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        let mut due = Vec::new();
        for (origin, same) in same_cover {
            let differ = mine.get(&origin).copied().unwrap_or_default()
                != theirs.get(&origin).copied().unwrap_or_default();
            if !(same && differ) {
                session.chases.remove(&origin);
                continue;
            }
            let chase = session.chases.entry(origin).or_insert_with(|| Chase {
                cursor: 1,
                ..Chase::default()
            });
            chase.streak += 1;
            if chase.streak >= STREAK && now.mono >= chase.next_at {
                chase.backoff = match chase.backoff {
                    0 => FIRST_BACKOFF_ROUNDS,
                    b => (b * 2).min(MAX_BACKOFF_ROUNDS),
                };
                chase.next_at = now.mono.saturating_add(
                    self.config
                        .anti_entropy_period
                        .saturating_mul(chase.backoff),
                );
                due.push((origin, chase.cursor));
            }
        }
        for (origin, from) in due {
            let last = self.durable.max_seq(origin);
            if from > last {
                continue;
            }
            let Ok((held, upto)) = src.held(origin, from..=last, MAX_HELD_RANGES) else {
                continue;
            };
            if let Some(chase) = self
                .sessions
                .get_mut(&peer)
                .and_then(|s| s.chases.get_mut(&origin))
            {
                chase.cursor = if upto >= last { 1 } else { upto + 1 };
            }
            let msg = Message::Held {
                origin,
                from,
                upto,
                held,
            };
            self.send(peer, msg, Lane::Urgent);
        }
    }

    /// The peer says which seqs of `origin` in `seqs` it holds: queue for it
    /// what this node holds there and it does not.
    pub(super) fn on_held(
        &mut self,
        now: Now,
        peer: PeerKey,
        origin: NodeId,
        seqs: RangeInclusive<u64>,
        theirs: &[RangeInclusive<u64>],
        src: &(impl RecordSource + ?Sized),
    ) {
        let Ok((mine, upto)) = src.held(origin, seqs.clone(), MAX_HELD_RANGES) else {
            return;
        };
        let upto = upto.min(*seqs.end());
        let mine = SeqSet::from_ranges(
            mine.into_iter()
                .filter(|r| *r.start() <= upto)
                .map(|r| *r.start()..=(*r.end()).min(upto)),
        );
        let theirs = SeqSet::from_ranges(theirs.iter().cloned());
        let lacking = mine.difference(&theirs);
        if lacking.is_empty() {
            return;
        }
        if let Some(session) = self.sessions.get_mut(&peer) {
            for range in lacking {
                if !session.repair.contains(&(origin, range.clone())) {
                    session.repair.push_back((origin, range));
                }
            }
        }
        self.pump(now, peer, src);
    }
}
