//! Anti-entropy rounds: how often, digest or frontier, and what a peer's
//! digest or frontier sets going.
//!
//! A full frontier lists every origin's ranges and holdings, so its size
//! grows with the cluster, and so does the number of peers it goes to: in
//! sync and idle, a node of a full mesh would send O(N²) bytes a period. Two
//! things bound it:
//!
//! - **Digest first.** A round normally sends [`Message::Digest`]: a 16-byte
//!   digest of the durable frontier and holdings, with the clock sample and
//!   any new reports. A receiver whose digest agrees has nothing to do; one
//!   whose digest differs answers with its full frontier, and the round's
//!   sender answers that with its own (see `Session::digest_sent`), so that
//!   each side streams what the other lacks, as after a frontier exchange.
//!   A node that already knows it lacks something of the peer sends its
//!   frontier straight away. A connection opens with a digest too: nodes
//!   that reconnect are mostly in sync, and a whole cluster's connections
//!   come up together. A difference in a connection's first digest is
//!   answered at once, not a round later.
//! - **A bounded number of rounds per period.** With more established peers
//!   than [`Config::anti_entropy_peers`], each peer's rounds are spread out
//!   so that the node as a whole holds about that many per
//!   [`Config::anti_entropy_period`]. A missing record is still found
//!   within about one period: any peer's round finds it.

use std::time::Duration;

use rand::RngCore;

use super::hints::Hints;
use super::now::Now;
use super::session::{Phase, Session};
use super::source::RecordSource;
use super::{jittered, Engine, Lane, PeerKey};
use crate::proto::{state_digest, Message};
use veto_core::Frontier;

impl Engine {
    /// The mean time between two anti-entropy rounds with one peer, as of
    /// now: the anti-entropy period, stretched when there are more
    /// established peers than [`super::Config::anti_entropy_peers`].
    pub fn round_period(&self) -> Duration {
        let peers = self
            .sessions
            .values()
            .filter(|s| s.is_established())
            .count();
        let per_period = self.config.anti_entropy_peers.max(1);
        let period = self.config.anti_entropy_period;
        if peers <= per_period {
            return period;
        }
        // Exact integer scaling: the simulator replays runs bit for bit.
        let nanos = period.as_nanos().saturating_mul(peers as u128) / per_period as u128;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When the next round with `peer` is due, from now: within the
    /// anti-entropy period while this node lacks something the peer has
    /// (the round sends the frontier that makes the peer stream it), else
    /// within the round period.
    pub(super) fn next_round_at(
        &self,
        now: Now,
        peer: PeerKey,
        rng: &mut (impl RngCore + ?Sized),
    ) -> Duration {
        let lacking = self.sessions.get(&peer).is_some_and(|s| self.lacks(s));
        let period = if lacking {
            self.config.anti_entropy_period
        } else {
            self.round_period()
        };
        now.mono.saturating_add(jittered(period, rng))
    }

    /// Whether this node still lacks something the peer's last frontier
    /// showed: a lack that pushes on their way have since filled is none.
    fn lacks(&self, session: &Session) -> bool {
        session.lack.origins().next().is_some()
            && !session.lack.missing_in(&self.durable).is_empty()
    }

    /// `peer`'s frontier showed what this node lacks: the next round with it
    /// comes within half an anti-entropy period, however long the round
    /// period, so that a peer this node now counts on to stream it (see the
    /// `sources` module) hears so soon, if the lack is still there then.
    /// Plumtree's graft, in effect.
    pub(super) fn hasten_round(&mut self, now: Now, peer: PeerKey) {
        let soon = now.mono.saturating_add(self.config.anti_entropy_period / 2);
        if let Some(Session {
            phase: Phase::Established { next_round, .. },
            hastened,
            ..
        }) = self.sessions.get_mut(&peer)
        {
            if soon < *next_round {
                *next_round = soon;
                *hastened = true;
            }
        }
    }

    /// One periodic round with `peer`: its frontier if this node lacks
    /// something the peer has (so that it streams it), else a digest.
    pub(super) fn send_round(
        &mut self,
        now: Now,
        peer: PeerKey,
        src: &(impl RecordSource + ?Sized),
    ) {
        let Some(session) = self.sessions.get(&peer) else {
            return;
        };
        // Past the full mesh, a round brought forward for a lack that pushes
        // have since filled has nothing to say. (In a small cluster it still
        // sends the frontier: frontiers also mend wrong copies of reports.)
        let filled = session.hastened && self.tree_on() && !self.lacks(session);
        let lacking = session.lack.origins().next().is_some();
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.hastened = false;
        }
        if filled {
            return;
        }
        if lacking {
            return self.send_frontier(now, peer, src);
        }
        self.send_digest(now, peer, src);
    }

    pub(super) fn send_digest(
        &mut self,
        now: Now,
        peer: PeerKey,
        src: &(impl RecordSource + ?Sized),
    ) {
        let state = state_digest(&self.durable, &src.holdings());
        let reports = self.frontier_reports(now, peer, true);
        let direct = self.direct_for(now, peer);
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.digest_sent = true;
        let clock = session.clock.sample(now);
        let msg = Message::Digest {
            state,
            clock,
            reports,
            direct,
        };
        self.send(peer, msg, Lane::Urgent);
    }

    /// A peer's digest: agreeing means the peer covers and holds exactly
    /// what this node does; differing, this node sends its frontier.
    pub(super) fn on_digest(
        &mut self,
        now: Now,
        peer: PeerKey,
        digest: Message,
        src: &(impl RecordSource + ?Sized),
    ) {
        let Message::Digest {
            state,
            clock,
            reports,
            direct,
        } = digest
        else {
            return;
        };
        if let (Some(direct), Some(session)) = (direct, self.sessions.get_mut(&peer)) {
            session.their_direct = Some(direct.into_iter().collect());
        }
        self.on_reports(now, peer, reports);
        let tree = self.tree_on();
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        // A wrong copy of a report from this peer is mended by frontier
        // exchanges (see `reports::WHOLE_EVERY`).
        let wrong = session.reports.has_wrong();
        let in_sync = !wrong && state == state_digest(&self.durable, &src.holdings());
        if session.clock.receive(now, &clock) {
            self.update_verdict();
        }
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        // Past the full mesh, a first difference of state waits for the
        // next round (see `Session::differed`); a wrong copy does not, nor
        // does the first digest of a connection: nothing is on its way yet.
        let opening = session.their.is_none();
        let first_difference = !in_sync && !wrong && !session.differed && tree && !opening;
        session.differed = first_difference;
        if in_sync {
            // It covers exactly what this node covers: nothing to stream,
            // nothing to get.
            session.their = Some(self.durable.clone());
            session.lack = Frontier::new();
            session.lack_since = None;
            self.plan_backlog(now, peer);
            if clock.echo == 0 {
                self.send_digest(now, peer, src);
            }
        } else if !first_difference {
            self.send_frontier(now, peer, src);
        }
    }

    /// A peer's frontier: what it covers and holds, its clock sample, where
    /// it gets its records from, and reports.
    pub(super) fn on_frontier(
        &mut self,
        now: Now,
        peer: PeerKey,
        frontier: Message,
        src: &(impl RecordSource + ?Sized),
    ) {
        let Message::Frontier {
            summary,
            holdings,
            clock,
            indirect,
            expected,
            reports,
            direct,
        } = frontier
        else {
            return;
        };
        if let (Some(direct), Some(session)) = (direct, self.sessions.get_mut(&peer)) {
            session.their_direct = Some(direct.into_iter().collect());
        }
        self.on_reports(now, peer, reports);
        let their = summary.to_frontier();
        let mut lack = Frontier::new();
        for (origin, ranges) in their.missing_in(&self.durable) {
            for r in ranges {
                lack.insert_range(origin, r);
            }
        }
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        let lacking = lack.origins().next().is_some();
        session.lack_since = match lacking {
            false => None,
            true => session.lack_since.or(Some(now.mono)),
        };
        session.lack = lack;
        // The first frontier of a connection was sent before its sender had
        // this node's: it could not yet say who sends it what.
        let blind = session.their.is_none();
        session.hints = Hints::of(&indirect, &expected, blind);
        let measured = session.clock.receive(now, &clock);
        // A peer that has no sample of ours (just connected, or its clock just
        // stepped) gets one at once, so that it can measure the offset within
        // a round trip rather than an anti-entropy period later.
        // A peer answering this node's digest gets this node's frontier
        // back: it showed that the two differ, but not yet what it lacks.
        // A peer whose last frontier from this node was blind gets one that
        // is not.
        let answer = clock.echo == 0 || session.digest_sent || session.sent_blind;
        session.their = Some(their);
        if measured {
            self.update_verdict();
        }
        // Chosen before answering, so that the answer already says it.
        self.designate(now, peer);
        if lacking {
            self.hasten_round(now, peer);
        }
        if answer {
            self.send_frontier(now, peer, src);
        }
        self.compare_holdings(now, peer, summary.truncated, &holdings, src);
        self.plan_backlog(now, peer);
        self.pump(now, peer, src);
    }
}
