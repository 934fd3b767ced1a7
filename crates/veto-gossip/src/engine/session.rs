//! Per-connection state, and the statistics an operator sees of it.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};

use veto_core::{Frontier, NodeId};

use super::clock::ClockTrack;
use super::config::Config;
use super::hints::Hints;
use super::holdings::Chase;
use super::now::Now;
use super::reports::ReportLink;

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Connected; the peer's `Hello` has not arrived yet.
    Handshaking,
    /// Handshake done: replicating.
    Established,
}

/// Who the peer said it is in its `Hello`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its node id.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
}

/// What one connection has done, for status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// Handshake state.
    pub state: PeerState,
    /// Who the peer is, once its `Hello` arrived.
    pub info: Option<PeerInfo>,
    /// When the connection was reported up.
    pub connected_at: Duration,
    /// When the last message from the peer arrived.
    pub last_contact: Option<Duration>,
    /// Records this node covers that the peer lacked per its last frontier;
    /// `None` before its first frontier.
    pub lag: Option<u64>,
    /// Seqs queued for the backlog stream to the peer, not yet sent.
    pub backlog: u64,
    /// Backlog batches sent and not yet acknowledged.
    pub unacked_batches: usize,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Encoded bytes received (frames given to `handle_frame`).
    pub bytes_in: u64,
    /// Encoded bytes sent.
    pub bytes_out: u64,
    /// Records received.
    pub records_in: u64,
    /// Records sent, pushed or in batches.
    pub records_out: u64,
    /// Received records that were already here or on their way to disk.
    pub duplicates_in: u64,
    /// Backlog batches whose ack never came within the ack timeout.
    pub batches_timed_out: u64,
}

/// A backlog batch sent and not yet acknowledged.
pub(crate) struct Inflight {
    pub(crate) batch_id: u64,
    pub(crate) sent_at: Duration,
    /// The seqs the batch answers, with records or as cleared.
    pub(crate) spans: Vec<(NodeId, RangeInclusive<u64>)>,
}

/// Local records pushed to the peer at one instant.
pub(crate) struct Pushed {
    pub(crate) at: Duration,
    pub(crate) spans: Vec<(NodeId, RangeInclusive<u64>)>,
}

/// The most push entries remembered per peer; beyond it the oldest are
/// forgotten, which can only cause a resend.
const MAX_PUSH_LOG: usize = 1024;

pub(crate) enum Phase {
    Handshaking {
        deadline: Duration,
    },
    Established {
        info: PeerInfo,
        next_round: Duration,
    },
}

pub(crate) struct Session {
    pub(crate) phase: Phase,
    pub(crate) last_contact: Option<Duration>,
    /// When the last message from the peer arrived, on the monotonic clock.
    pub(crate) heard_at: Duration,
    /// The peer's last advertised frontier.
    pub(crate) their: Option<Frontier>,
    /// What that frontier covers and this node lacked when it arrived.
    pub(crate) lack: Frontier,
    /// Since when the peer's frontiers have shown something this node lacks.
    pub(crate) lack_since: Option<Duration>,
    /// When the peer last sent records (or cleared seqs), on the monotonic
    /// clock.
    pub(crate) delivered_at: Duration,
    /// Where the peer said it gets its records from.
    pub(crate) hints: Hints,

    /// What is left to stream to the peer: the cursor, as ranges per origin in
    /// order. Never holds records, so memory stays flat whatever the backlog.
    pub(crate) need: VecDeque<(NodeId, RangeInclusive<u64>)>,
    /// Seqs the peer covers but told us (in `Held`) it holds no data for,
    /// and this node holds: streamed after `need`.
    pub(crate) repair: VecDeque<(NodeId, RangeInclusive<u64>)>,
    /// Holdings differences being chased, per origin.
    pub(crate) chases: BTreeMap<NodeId, Chase>,
    /// Clock samples exchanged with the peer.
    pub(crate) clock: ClockTrack,
    pub(crate) inflight: VecDeque<Inflight>,
    pub(crate) next_batch_id: u64,
    /// Set after the record source failed: no reads before then.
    pub(crate) retry_at: Option<Duration>,
    pub(crate) pushed: VecDeque<Pushed>,
    /// Batches received from the peer whose ack waits on durability.
    pub(crate) unacked_in: usize,
    /// Reports sent to and received from the peer.
    pub(crate) reports: ReportLink,
    /// The nodes this node last told the peer it is connected to.
    pub(crate) direct_sent: Option<Vec<NodeId>>,
    /// The nodes the peer last said it is connected to; until it says, it
    /// is sent no other node's report.
    pub(crate) their_direct: Option<BTreeSet<NodeId>>,
    /// This node's last round with the peer was a digest, and no frontier
    /// went since: a frontier from the peer (its answer to a digest that
    /// differed) is answered with this node's own.
    pub(crate) digest_sent: bool,
    /// The last frontier sent to the peer went before this node had the
    /// peer's (the answer to its opening digest): it was blind, so the
    /// peer's frontier is answered with one that can say who sends what.
    pub(crate) sent_blind: bool,
    /// The next round was brought forward by a frontier that showed a lack:
    /// if the lack is gone by then (it was on its way), the round sends
    /// nothing.
    pub(crate) hastened: bool,
    /// The peer's last digest differed from this node's state. In a large
    /// cluster a first difference is most often records still on their way,
    /// so only a second one in a row is answered with a frontier.
    pub(crate) differed: bool,
    /// When the connection came up, on the monotonic clock.
    pub(crate) opened_at: Duration,
    pub(crate) stats: PeerStats,
}

impl Session {
    pub(crate) fn new(now: Now, config: &Config) -> Session {
        Session {
            phase: Phase::Handshaking {
                deadline: now.mono.saturating_add(config.handshake_timeout),
            },
            last_contact: None,
            heard_at: now.mono,
            their: None,
            lack: Frontier::new(),
            lack_since: None,
            delivered_at: now.mono,
            hints: Hints::default(),

            need: VecDeque::new(),
            repair: VecDeque::new(),
            chases: BTreeMap::new(),
            clock: ClockTrack::default(),
            inflight: VecDeque::new(),
            next_batch_id: 1,
            retry_at: None,
            pushed: VecDeque::new(),
            unacked_in: 0,
            reports: ReportLink::default(),
            direct_sent: None,
            their_direct: None,
            digest_sent: false,
            sent_blind: false,
            hastened: false,
            differed: false,
            opened_at: now.mono,
            stats: PeerStats {
                state: PeerState::Handshaking,
                info: None,
                connected_at: now.wall,
                last_contact: None,
                lag: None,
                backlog: 0,
                unacked_batches: 0,
                messages_in: 0,
                messages_out: 0,
                bytes_in: 0,
                bytes_out: 0,
                records_in: 0,
                records_out: 0,
                duplicates_in: 0,
                batches_timed_out: 0,
            },
        }
    }

    pub(crate) fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established { .. })
    }

    /// The peer's region, once its `Hello` arrived.
    pub(crate) fn peer_region(&self) -> Option<&str> {
        match &self.phase {
            Phase::Established { info, .. } => Some(&info.region),
            Phase::Handshaking { .. } => None,
        }
    }

    /// The peer's node id, once its `Hello` arrived.
    pub(crate) fn node(&self) -> Option<NodeId> {
        match &self.phase {
            Phase::Established { info, .. } => Some(info.node),
            Phase::Handshaking { .. } => None,
        }
    }

    /// The earliest time this session needs a tick.
    pub(crate) fn deadline(&self, config: &Config) -> Option<Duration> {
        let phase = match &self.phase {
            Phase::Handshaking { deadline } => *deadline,
            Phase::Established { next_round, .. } => *next_round,
        };
        let ack = self
            .inflight
            .iter()
            .map(|b| b.sent_at.saturating_add(config.ack_timeout))
            .min();
        let retry = self
            .retry_at
            .filter(|_| !self.need.is_empty() || !self.repair.is_empty());
        [Some(phase), ack, retry].into_iter().flatten().min()
    }

    /// Remembers local records pushed now, and forgets pushes older than the
    /// grace period.
    pub(crate) fn log_push(
        &mut self,
        now: Now,
        grace: Duration,
        spans: Vec<(NodeId, RangeInclusive<u64>)>,
    ) {
        self.expire_pushes(now, grace);
        if self.pushed.len() >= MAX_PUSH_LOG {
            self.pushed.pop_front();
        }
        self.pushed.push_back(Pushed {
            at: now.mono,
            spans,
        });
    }

    pub(crate) fn expire_pushes(&mut self, now: Now, grace: Duration) {
        while self
            .pushed
            .front()
            .is_some_and(|p| p.at.saturating_add(grace) <= now.mono)
        {
            self.pushed.pop_front();
        }
    }

    /// The statistics, with the lag measured against `durable`.
    pub(crate) fn stats(&self, durable: &Frontier) -> PeerStats {
        let mut stats = self.stats.clone();
        if let Phase::Established { info, .. } = &self.phase {
            stats.state = PeerState::Established;
            stats.info = Some(info.clone());
        }
        stats.last_contact = self.last_contact;
        // Summed here with saturation: a peer's ranges may be huge.
        stats.lag = self.their.as_ref().map(|t| {
            durable
                .missing_in(t)
                .iter()
                .flat_map(|(_, ranges)| ranges.iter().map(seqs_in))
                .fold(0, u64::saturating_add)
        });
        stats.backlog = self
            .need
            .iter()
            .chain(self.repair.iter())
            .map(|(_, r)| seqs_in(r))
            .fold(0, u64::saturating_add);
        stats.unacked_batches = self.inflight.len();
        stats
    }
}

/// How many seqs a non-empty range holds, saturating at `u64::MAX`.
pub(crate) fn seqs_in(r: &RangeInclusive<u64>) -> u64 {
    r.end().saturating_sub(*r.start()).saturating_add(1)
}
