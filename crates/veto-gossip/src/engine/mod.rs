//! The replication protocol as a sans-IO state machine.
//!
//! An [`Engine`] is one node's side of replication with all its peers. It does
//! no I/O and reads no clock: its driver feeds it inputs (a connection up or
//! down, a message, new local records, a persisted batch, a timer) with the
//! time on two clocks ([`Now`]: monotonic for timers, wall for stamps and
//! expiry) and randomness, and drains
//! [`Output`]s: messages to send (encoded once, as [`Frame`]s), records to
//! persist, connections to close, events to log. [`Engine::next_timeout`] says when to call [`Engine::tick`]
//! next. The same engine runs under quinn in production and under a simulated
//! network in tests, the way quinn-proto's `Connection` does.
//!
//! # The protocol
//!
//! - **Handshake.** Each side sends `Hello` at once, with its first clock
//!   sample. A `Hello` of another protocol version (told by its version
//!   even where the rest does not decode), or any other message before
//!   `Hello`, is answered with `Goodbye { reason }` and [`Output::Close`].
//! - **Eager push.** A record made here ([`Engine::local_records`]) is pushed at
//!   once, on the urgent lane, to every peer past its handshake; past
//!   [`Config::full_mesh_peers`] peers, along a region-aware tree instead: to
//!   this region's peers and one gateway per other region, which pushes it
//!   on to its own region's (see the `tree` module). Nothing else is
//!   relayed: anti-entropy carries records further. A push to a
//!   peer in another region is sent again as datagrams after each of
//!   [`Config::push_echoes`], so that a lost packet does not hold it up
//!   until QUIC's probe timeout; a datagram is taken in only as a push, only
//!   after the handshake, and anything else in one is dropped, never a
//!   violation (see the `echo` module).
//! - **Anti-entropy.** Each side sends its durable frontier after the handshake
//!   and then holds periodic rounds: a fixed-size digest of its state, which
//!   a peer that differs answers with its frontier (see the `rounds` module
//!   for when and how often: about [`Config::anti_entropy_peers`] rounds per
//!   [`Config::anti_entropy_period`] over all peers). On a frontier the
//!   other side queues exactly what the sender lacks (minus batches in flight,
//!   records pushed within [`Config::push_grace`], and what the sender said it
//!   gets from elsewhere) and streams it on the
//!   bulk lane in batches of at most [`Config::max_batch_records`] records and
//!   [`Config::max_batch_bytes`] bytes, read through [`RecordSource`]. Seqs it
//!   covers but has pruned go along as `cleared`.
//! - **One source per record.** A frontier also says which origins the sender
//!   does not hear directly (so the receiver does not relay the others' fresh
//!   pushes, which are on their way), and what it lacks and expects from
//!   another peer: for each origin, one peer (the first whose frontier showed
//!   the records, kept while it keeps sending) streams the backlog, so a
//!   lagging node gets it once rather than from every peer. The first
//!   frontier of a connection, sent before its sender heard the other side,
//!   starts no stream. See the `sources` module.
//! - **Backpressure.** At most [`Config::window`] batches per peer are in flight
//!   before an `Ack`. The receiver acks a batch once everything in it is
//!   durable, or once persisting it failed (its next frontier then still lacks
//!   the records, so they are sent again). Only a cursor of seq ranges is kept
//!   per peer, never the backlog.
//! - **Durability.** A received record counts in the frontier this node
//!   advertises only after the driver reports it durable
//!   ([`Engine::records_durable`]). A record already on its way to disk is a
//!   duplicate. A record already covered is compared with the stored copy: the
//!   same is a duplicate; different content under the same id is a
//!   [`EngineEvent::Conflict`], refused (the stored record stays) and counted.
//!   A record received already past its expiry is stored all the same: only
//!   the node's garbage collector, which checks its clock against the
//!   cluster's, decides that a record is gone.
//! - **Holdings.** Each `Frontier` also carries, per origin, a digest of the
//!   live records the sender holds. Two nodes that cover the same seqs of an
//!   origin but hold different records of it (one lost data it still covers)
//!   exchange [`Message::Held`] and stream each other what the other lacks; a
//!   covered id without data here takes its record back unless it is expired
//!   (see [`Output::Persist`]'s `restore`).
//! - **Clock.** Each new record's stamp is observed by the node's
//!   [`HybridClock`]. A stamp too far ahead is still stored, and reported as
//!   [`EngineEvent::ClockAhead`]. Frontiers carry clock samples, from which
//!   [`Engine::clock_check`] tells whether this node's wall clock agrees with
//!   its peers' (see the `clock` module).
//!
//! All state is kept in ordered maps and all randomness comes from the `rng`
//! argument, so a seeded run is reproducible.

mod clock;
mod clock_check;
mod config;
mod echo;
mod hints;
mod holdings;
mod now;
mod outbox;
mod output;
mod receiver;
mod reporting;
mod reports;
mod rounds;
mod runtime;
mod sender;
mod session;
mod source;
mod sources;
#[cfg(test)]
mod tests;
mod tree;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, RngCore};
use veto_core::{Frontier, HybridClock, NodeId, Record, RecordId};

use crate::proto::{self, ClockSample, Hello, Message, MAX_TEXT_BYTES, PROTOCOL_VERSION};

pub use clock::{ClockCheck, ClockOffset, ClockVerdict};
pub use config::{Config, MAX_WINDOW};
pub use now::Now;
pub use output::{EngineEvent, Frame, Lane, Output, PeerKey, PersistId, Via};
pub use reports::{Checkpoint, Coverage, NodeReport, Reports};
pub use runtime::{dispatch, drain, Input, Runtime};
pub use session::{PeerInfo, PeerState, PeerStats};
pub use source::{held_ranges, HeldRanges, RecordSource, SourceUnavailable};

use receiver::Ticket;
use session::{Phase, Session};
use sources::Fresh;

/// Totals over all peers since the engine started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Received records that were new and sent to be persisted.
    pub records_new: u64,
    /// Received records already covered or already on their way to disk.
    pub duplicates: u64,
    /// Received records already past their expiry plus grace (stored all the
    /// same; garbage collection takes them).
    pub expired_on_receipt: u64,
    /// Received records whose id is stored here with different content:
    /// refused.
    pub conflicts: u64,
    /// Records taken back for ids this node covered without data.
    pub restored: u64,
    /// Seqs covered because a peer had pruned them.
    pub cleared: u64,
    /// Received records stamped beyond the maximum clock offset.
    pub clock_ahead: u64,
    /// Persist requests the driver reported failed.
    pub persist_failures: u64,
    /// Connections closed for breaking the protocol.
    pub violations: u64,
    /// Records pushed on to this node's region, as an origin's gateway
    /// there (see [`Config::full_mesh_peers`]).
    pub relayed: u64,
    /// Records pushed again to a region, through another gateway, after
    /// the tree's first one was not reported in time.
    pub regrafted: u64,
    /// Records currently waiting for the driver to make them durable.
    pub persisting: usize,
}

/// One node's replication state machine. See the module docs.
pub struct Engine {
    config: Config,
    clock: Arc<HybridClock>,
    /// Everything this node holds durably, or held and pruned.
    durable: Frontier,
    sessions: BTreeMap<PeerKey, Session>,
    /// Records asked to be persisted and not yet reported durable.
    persisting: BTreeMap<RecordId, u64>,
    tickets: BTreeMap<u64, Ticket>,
    next_ticket: u64,
    /// Received batches whose ack waits for this many tickets.
    pending_acks: BTreeMap<(PeerKey, u64), usize>,
    outputs: VecDeque<Output>,
    stats: EngineStats,
    /// The clock check as of the last change of any offset or connection
    /// (its verdict is the one last reported as an event): every received
    /// batch consults it, so it is not recomputed over every peer each time.
    check: ClockCheck,
    /// Records received by push lately, held back from relaying.
    fresh: Fresh,
    /// Per origin, the connection chosen to stream what this node lacks of
    /// it.
    designated: BTreeMap<NodeId, PeerKey>,
    /// Who holds what across the cluster.
    reports: Reports,
    /// The origins of received records that became durable since this node
    /// last reported: they are told at once (a receipt at the origin waits
    /// on it).
    report_due: BTreeSet<NodeId>,
    /// The durable frontier changed since this node's report was made.
    own_report_stale: bool,
    /// Copies of recent pushes to peers in other regions, not yet sent.
    echoes: echo::Echoes,
    relay_watch: tree::RelayWatch,
}

impl Engine {
    /// An engine for a node whose store covers `durable_frontier`, with a
    /// clock of its own.
    pub fn new(config: Config, durable_frontier: Frontier) -> Engine {
        let clock = Arc::new(HybridClock::new(config.node, config.max_clock_offset));
        Engine::with_clock(config, durable_frontier, clock)
    }

    /// An engine sharing the node's clock, so that stamps observed from peers
    /// order the node's later revocations after them.
    pub fn with_clock(
        config: Config,
        durable_frontier: Frontier,
        clock: Arc<HybridClock>,
    ) -> Engine {
        Engine {
            config: config.clamped(),
            clock,
            durable: durable_frontier,
            sessions: BTreeMap::new(),
            persisting: BTreeMap::new(),
            tickets: BTreeMap::new(),
            next_ticket: 1,
            pending_acks: BTreeMap::new(),
            outputs: VecDeque::new(),
            stats: EngineStats::default(),
            check: ClockCheck::UNCONFIRMED,
            fresh: Fresh::default(),
            designated: BTreeMap::new(),
            reports: Reports::default(),
            report_due: BTreeSet::new(),
            own_report_stale: true,
            echoes: echo::Echoes::default(),
            relay_watch: tree::RelayWatch::default(),
        }
    }

    /// The settings in force (after clamping to the protocol's limits).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's hybrid logical clock.
    pub fn clock(&self) -> &Arc<HybridClock> {
        &self.clock
    }

    /// What this node covers durably: what it advertises to peers.
    pub fn frontier(&self) -> &Frontier {
        &self.durable
    }

    /// Totals since start.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            persisting: self.persisting.len(),
            ..self.stats.clone()
        }
    }

    /// The connections the engine knows, in key order.
    pub fn peers(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.sessions.keys().copied()
    }

    /// One connection's state and counters, if it is known.
    pub fn peer_stats(&self, peer: PeerKey) -> Option<PeerStats> {
        self.sessions.get(&peer).map(|s| s.stats(&self.durable))
    }

    /// A connection to a peer is up (for QUIC: after mutual TLS). Sends `Hello`.
    /// A key already in use is treated as a new connection.
    pub fn peer_connected(&mut self, now: Now, peer: PeerKey) {
        let mut session = Session::new(now, &self.config);
        // The connection's first clock sample, which the peer's first
        // digest echoes.
        let sent_at = session.clock.sample(now).sent_at;
        // A key in use is a new connection: the old one's offset goes.
        if self.sessions.insert(peer, session).is_some() {
            self.update_verdict();
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            node: self.config.node,
            name: clip(&self.config.name),
            region: clip(&self.config.region),
            sent_at,
        };
        self.send(peer, Message::Hello(hello), Lane::Urgent);
    }

    /// A connection is gone. Its unacknowledged batches are forgotten: the next
    /// connection's anti-entropy finds what is still missing.
    pub fn peer_lost(&mut self, _now: Now, peer: PeerKey) {
        self.sessions.remove(&peer);
        self.echoes.forget(peer);
        self.undesignate(peer);
        self.update_verdict();
    }

    /// Takes in one received frame payload (without its length prefix),
    /// decoding it first. A frame that does not decode closes the connection.
    pub fn handle_frame(
        &mut self,
        now: Now,
        peer: PeerKey,
        frame: &[u8],
        rng: &mut (impl RngCore + ?Sized),
        src: &(impl RecordSource + ?Sized),
    ) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.stats.bytes_in += frame.len() as u64;
        let established = session.is_established();
        match proto::decode(frame) {
            Ok(msg) => self.handle_message(now, peer, msg, rng, src),
            Err(e) => match proto::hello_version(frame) {
                Some(version) if !established && version != PROTOCOL_VERSION => {
                    self.violation(peer, version_mismatch(version));
                }
                _ => self.violation(peer, format!("undecodable message: {e}")),
            },
        }
    }

    /// Takes in one datagram's payload. Only a push is expected there (see
    /// [`Lane::Datagram`]), and only once the handshake is done; since a
    /// datagram may overtake the handshake, arrive after its connection
    /// began closing, or be a stray copy, anything else is dropped and
    /// counted ([`EngineEvent::DatagramDropped`]), never taken as a protocol
    /// violation.
    pub fn handle_datagram(
        &mut self,
        now: Now,
        peer: PeerKey,
        datagram: &[u8],
        src: &(impl RecordSource + ?Sized),
    ) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.stats.bytes_in += datagram.len() as u64;
        let reason = match proto::decode(datagram) {
            _ if !session.is_established() => "before the handshake",
            Ok(msg) if msg.validate().is_err() => "invalid message",
            Ok(Message::Push { records }) => {
                session.stats.messages_in += 1;
                session.last_contact = Some(now.wall);
                session.heard_at = now.mono;
                self.fresh.log(now, self.config.push_grace, &records);
                return self.on_push(now, peer, records, Via::Echo, src);
            }
            Ok(_) => "not a push",
            Err(_) => "undecodable",
        };
        self.event(EngineEvent::DatagramDropped { peer, reason });
    }

    /// Takes in one received message.
    pub fn handle_message(
        &mut self,
        now: Now,
        peer: PeerKey,
        msg: Message,
        rng: &mut (impl RngCore + ?Sized),
        src: &(impl RecordSource + ?Sized),
    ) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.stats.messages_in += 1;
        session.last_contact = Some(now.wall);
        session.heard_at = now.mono;
        let established = session.is_established();
        if let Err(e) = msg.validate() {
            return self.violation(peer, format!("invalid {}: {e}", msg.kind()));
        }
        match msg {
            Message::Goodbye { reason } => {
                self.close(
                    peer,
                    format!("peer closed the connection: {}", clip(&reason)),
                );
            }
            Message::Hello(hello) if !established => self.on_hello(now, peer, hello, rng, src),
            Message::Hello(_) => self.violation(peer, "second Hello".to_owned()),
            other if !established => {
                self.violation(peer, format!("{} before Hello", other.kind()));
            }
            frontier @ Message::Frontier { .. } => self.on_frontier(now, peer, frontier, src),
            digest @ Message::Digest { .. } => self.on_digest(now, peer, digest, src),
            Message::Push { records } => {
                self.fresh.log(now, self.config.push_grace, &records);
                self.on_push(now, peer, records, Via::Push, src);
            }
            Message::Records {
                batch_id,
                records,
                cleared,
            } => self.on_records(now, peer, records, cleared, batch_id, src),
            Message::Ack { batch_id } => self.on_ack(now, peer, batch_id, src),
            Message::Held {
                origin,
                from,
                upto,
                held,
            } => self.on_held(now, peer, origin, from..=upto, &held, src),
            Message::Reports { reports } => self.on_reports(now, peer, reports),
        }
    }

    /// Records made on this node, already durable in its store: they count in
    /// the frontier at once and are pushed to every established peer.
    /// Records already covered are ignored.
    pub fn local_records(&mut self, now: Now, records: &[Record]) {
        let fresh: Vec<Record> = records
            .iter()
            .filter(|r| !self.persisting.contains_key(&r.id) && self.durable.insert(r.id))
            .cloned()
            .collect();
        if !fresh.is_empty() {
            self.own_report_stale = true;
            self.push_to_peers(now, &fresh);
        }
    }

    /// Timers: handshake deadlines, anti-entropy rounds, ack timeouts, and
    /// resuming a backlog stream after a failed read.
    pub fn tick(
        &mut self,
        now: Now,
        rng: &mut (impl RngCore + ?Sized),
        src: &(impl RecordSource + ?Sized),
    ) {
        self.send_due_echoes(now);
        self.check_relays(now);
        let keys: Vec<PeerKey> = self.sessions.keys().copied().collect();
        for peer in keys {
            let Some(session) = self.sessions.get_mut(&peer) else {
                continue;
            };
            if matches!(session.phase, Phase::Handshaking { deadline } if now.mono >= deadline) {
                let reason = format!(
                    "no Hello within {:?} of connecting",
                    self.config.handshake_timeout
                );
                self.violation(peer, reason);
                continue;
            }
            let round_due = matches!(
                session.phase,
                Phase::Established { next_round, .. } if now.mono >= next_round
            );
            if round_due {
                let at = self.next_round_at(now, peer, rng);
                let Some(session) = self.sessions.get_mut(&peer) else {
                    continue;
                };
                if let Phase::Established { next_round, .. } = &mut session.phase {
                    *next_round = at;
                }
            }
            let Some(session) = self.sessions.get_mut(&peer) else {
                continue;
            };
            let timeout = self.config.ack_timeout;
            let mut timed_out = Vec::new();
            session.inflight.retain(|b| {
                let live = b.sent_at.saturating_add(timeout) > now.mono;
                if !live {
                    timed_out.push(b.batch_id);
                }
                live
            });
            session.stats.batches_timed_out += timed_out.len() as u64;
            for batch_id in timed_out {
                self.event(EngineEvent::BatchTimedOut { peer, batch_id });
            }
            if round_due {
                self.send_round(now, peer, src);
            }
            self.pump(now, peer, src);
        }
    }

    /// The next output, in the order the driver must act on them.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Engine::tick`] should next be called, if ever, on the monotonic
    /// clock of [`Now::mono`].
    pub fn next_timeout(&self) -> Option<Duration> {
        self.sessions
            .values()
            .filter_map(|s| s.deadline(&self.config))
            .chain(self.echoes.next_due())
            .chain(self.relay_watch.next_due())
            .min()
    }

    fn on_hello(
        &mut self,
        now: Now,
        peer: PeerKey,
        hello: Hello,
        rng: &mut (impl RngCore + ?Sized),
        src: &(impl RecordSource + ?Sized),
    ) {
        if hello.version != PROTOCOL_VERSION {
            return self.violation(peer, version_mismatch(hello.version));
        }
        if hello.node == self.config.node {
            let reason = format!("peer has this node's own id {}", hello.node);
            return self.violation(peer, reason);
        }
        let next_round = self.next_round_at(now, peer, rng);
        let info = PeerInfo {
            node: hello.node,
            name: hello.name,
            region: hello.region,
        };
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.phase = Phase::Established {
                info: info.clone(),
                next_round,
            };
            // A `Hello` echoes nothing: this only keeps its sample for this
            // node's first digest to echo.
            let sample = ClockSample {
                sent_at: hello.sent_at,
                echo: 0,
                held: 0,
            };
            session.clock.receive(now, &sample);
        }
        self.event(EngineEvent::PeerUp {
            peer,
            node: info.node,
            name: info.name,
            region: info.region,
        });
        // A digest first, not the full frontier: peers that connect again
        // are mostly in sync already, and a cluster's connections all come
        // up at once. A digest that differs is answered with a frontier at
        // once (see `on_digest`), so a peer that lacks something learns it
        // one round trip later.
        self.send_digest(now, peer, src);
    }

    fn on_ack(
        &mut self,
        now: Now,
        peer: PeerKey,
        batch_id: u64,
        src: &(impl RecordSource + ?Sized),
    ) {
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.inflight.retain(|b| b.batch_id != batch_id);
        }
        self.pump(now, peer, src);
    }
}

/// Why a peer of protocol `version` is refused.
fn version_mismatch(version: u32) -> String {
    format!(
        "protocol version mismatch: peer speaks version {version}, this node speaks version {PROTOCOL_VERSION}"
    )
}

/// A uniformly random time between half and one and a half `period`.
fn jittered(period: Duration, rng: &mut (impl RngCore + ?Sized)) -> Duration {
    let nanos = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos((nanos / 2).saturating_add(rng.gen_range(0..=nanos)))
}

/// `text` cut to the protocol's text limit, on a character boundary.
fn clip(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
