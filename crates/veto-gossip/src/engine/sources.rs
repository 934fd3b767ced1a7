//! Who sends a lagging node which records, so that it receives each record
//! about once rather than once per peer.
//!
//! Every peer that covers what a node lacks would stream it all, each session
//! planning from that node's frontier alone. Only the receiver knows who else
//! can send it what, so each `Frontier` it sends says so:
//!
//! - `indirect`: the origins it knows of but is not connected to (or has not
//!   heard from lately). The new records of every other origin reach it by
//!   push, so a peer relays none that it got by push itself within
//!   [`super::Config::push_grace`]: they are on their way. Listing the
//!   exceptions keeps frontiers small in a full mesh.
//! - `expected`: what it lacks and expects from a peer ranked before the
//!   receiver. For each origin, the origin itself ranks first (it pushes and
//!   streams its own log), then the other peers by node id. A peer streams
//!   what nobody ranked before it covers, as far as the receiver knows.
//!
//! Both are hints that only ever hold records back for a while: a peer that
//! falls silent for [`Engine::source_window`], or owes records that long
//! without sending any, stops counting, and every new frontier says again
//! what is missing, so a record held back this round is sent the next if it
//! is still missing. A peer that gets a frontier sent
//! before its sender had heard its own (`echo` 0) streams only its own
//! records: the sender did not yet know who covers what.

use std::collections::{BTreeSet, VecDeque};
use std::ops::RangeInclusive;
use std::time::Duration;

use veto_core::{Frontier, NodeId, Record};

use super::now::Now;
use super::sender::spans_of;
use super::session::Session;
use super::{Engine, PeerKey};
use crate::proto::{OriginRanges, MAX_EXPECTED_RANGES, MAX_INDIRECT_ORIGINS};

/// The most received pushes remembered; beyond it the oldest are forgotten,
/// which can only cause a duplicate.
const MAX_FRESH: usize = 4096;

/// Records received by push, with when: held back from relaying for a while.
#[derive(Default)]
pub(crate) struct Fresh {
    log: VecDeque<(Duration, NodeId, RangeInclusive<u64>)>,
}

impl Fresh {
    /// Remembers the records of a push received now.
    pub(crate) fn log(&mut self, now: Now, grace: Duration, records: &[Record]) {
        self.expire(now, grace);
        for (origin, range) in spans_of(records) {
            if self.log.len() >= MAX_FRESH {
                self.log.pop_front();
            }
            self.log.push_back((now.mono, origin, range));
        }
    }

    fn expire(&mut self, now: Now, grace: Duration) {
        while self
            .log
            .front()
            .is_some_and(|(at, ..)| at.saturating_add(grace) <= now.mono)
        {
            self.log.pop_front();
        }
    }
}

/// Who ranks first for sending `origin`'s records, after the designated
/// source: the origin, then by id.
fn rank(node: NodeId, origin: NodeId) -> (bool, NodeId) {
    (node != origin, node)
}

impl Engine {
    /// How long a peer may stay silent and still count as a source: while
    /// this node lacks what it has, rounds with it come at most 1.5
    /// anti-entropy periods apart (see the `rounds` module), and the grace
    /// covers their transit.
    pub(super) fn source_window(&self) -> Duration {
        (self.config.anti_entropy_period * 3 / 2).saturating_add(self.config.push_grace)
    }

    /// Whether a peer counts as sending this node what it has: connected,
    /// heard from lately, and not owing records for a whole window without
    /// sending any (its reads may fail, or its stream be stuck).
    fn is_source(&self, key: PeerKey, now: Now) -> bool {
        let window = self.source_window();
        let recent = |t: Duration| t.saturating_add(window) > now.mono;
        self.sessions.get(&key).is_some_and(|s| {
            let stalled = s.lack_since.is_some_and(|t| !recent(t)) && !recent(s.delivered_at);
            s.is_established() && recent(s.heard_at) && !stalled
        })
    }

    /// `peer`'s frontier shows records this node lacks: it becomes the source
    /// of each origin that has none. The first to show them is usually the
    /// nearest, and keeping it while it lasts means no two peers both think
    /// the other one sends.
    pub(super) fn designate(&mut self, now: Now, peer: PeerKey) {
        let Some(session) = self.sessions.get(&peer) else {
            return;
        };
        let origins: Vec<NodeId> = session.lack.origins().map(|(o, _)| o).collect();
        for origin in origins {
            let held = self.designated.get(&origin).copied();
            if held.is_none_or(|d| !self.is_source(d, now)) {
                self.designated.insert(origin, peer);
            }
        }
    }

    /// A connection is gone: it is nobody's source any more.
    pub(super) fn undesignate(&mut self, peer: PeerKey) {
        self.designated.retain(|_, d| *d != peer);
    }

    /// The `indirect` and `expected` parts of a frontier for `peer`.
    pub(super) fn source_hints(&self, now: Now, peer: PeerKey) -> (Vec<NodeId>, OriginRanges) {
        let to = self.sessions.get(&peer).and_then(Session::node);
        let sources: Vec<(PeerKey, NodeId, &Session)> = self
            .sessions
            .iter()
            .filter(|(key, _)| **key != peer && self.is_source(**key, now))
            .filter_map(|(key, s)| Some((*key, s.node()?, s)))
            .collect();
        let mut expected = Frontier::new();
        for (key, node, s) in &sources {
            for (origin, seqs) in s.lack.origins() {
                let designated = self.designated.get(&origin);
                let first = match designated {
                    Some(d) if *d == peer => false,
                    Some(d) if d == key => true,
                    // What the designated source does not cover goes by rank.
                    _ => to.is_none_or(|to| rank(*node, origin) < rank(to, origin)),
                };
                if first {
                    for r in seqs.ranges() {
                        expected.insert_range(origin, r);
                    }
                }
            }
        }
        let mut expected = expected.missing_in(&self.durable);
        let mut budget = MAX_EXPECTED_RANGES;
        expected.retain_mut(|(_, ranges)| {
            ranges.truncate(budget);
            budget -= ranges.len();
            !ranges.is_empty()
        });
        let direct: BTreeSet<NodeId> = sources.iter().map(|(_, node, _)| *node).collect();
        let mut known: BTreeSet<NodeId> = self.durable.origins().map(|(o, _)| o).collect();
        for s in self.sessions.values() {
            known.extend(s.lack.origins().map(|(o, _)| o));
        }
        let indirect = known
            .into_iter()
            .filter(|o| *o != self.config.node && Some(*o) != to && !direct.contains(o))
            .take(MAX_INDIRECT_ORIGINS)
            .collect();
        (indirect, expected)
    }

    /// What a backlog plan for `peer` leaves out because the peer gets it
    /// from elsewhere: its expected seqs, and fresh pushes of the origins it
    /// hears directly. A blind frontier leaves out everything.
    pub(super) fn held_back(&mut self, now: Now, peer: PeerKey, coming: &mut Frontier) {
        let grace = self.config.push_grace;
        self.fresh.expire(now, grace);
        let Some(session) = self.sessions.get(&peer) else {
            return;
        };
        let hints = &session.hints;
        coming.union_with(&hints.expected);
        for (_, origin, range) in &self.fresh.log {
            if !hints.indirect.contains(origin) {
                coming.insert_range(*origin, range.clone());
            }
        }
        if hints.blind {
            let origins: Vec<NodeId> = self.durable.origins().map(|(o, _)| o).collect();
            for origin in origins {
                coming.insert_range(origin, 1..=u64::MAX);
            }
        }
    }
}
