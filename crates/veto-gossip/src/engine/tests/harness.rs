//! A deterministic in-memory world of engines, in the manner of quinn-proto's
//! test `Pair`: it owns the engines and their stores, carries encoded frames
//! between them with a fixed latency per lane, applies persist requests, and
//! advances a fake clock to the next delivery or timer.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use veto_core::{Frontier, Hlc, NodeId, Record, RecordId, Target};

use super::store::Store;
use crate::engine::{
    drain, Config, Engine, EngineEvent, Frame, Input, Lane, Now, PeerKey, PersistId, Runtime,
};
use crate::proto::{self, Message, MessageKind, MAX_FRAME_BYTES};

/// The wall clock at the start of every test.
pub(super) const T0: Duration = Duration::from_secs(1_700_000_000);

pub(super) struct Node {
    pub(super) engine: Engine,
    pub(super) store: Store,
    /// Persist requests are applied at once when set; otherwise they wait in
    /// `held` until [`World::flush`].
    pub(super) auto_persist: bool,
    pub(super) held: Vec<(PersistId, Vec<Record>, Frontier, Vec<Record>)>,
    /// The record ids of every persist request, in order.
    pub(super) persisted: Vec<RecordId>,
    pub(super) events: Vec<EngineEvent>,
    pub(super) closed: Vec<(PeerKey, String)>,
    next_seq: u64,
}

/// One message as it left a node.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Sent {
    pub(super) at: Duration,
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) lane: Lane,
    pub(super) bytes: usize,
    pub(super) msg: Message,
}

struct Link {
    a: usize,
    ka: PeerKey,
    b: usize,
    kb: PeerKey,
}

enum Delivery {
    Frame(Vec<u8>),
    /// A frame sent on the datagram lane.
    Datagram(Vec<u8>),
    /// The connection is gone, as the transport would report it.
    Lost,
}

struct Envelope {
    from: usize,
    to: usize,
    key: PeerKey,
    is_ack: bool,
    what: Delivery,
}

/// Decides whether to drop a message: `(from, to, message)`.
pub(super) type DropRule = Box<dyn FnMut(usize, usize, &Message) -> bool>;

pub(super) struct World {
    pub(super) now: Duration,
    pub(super) nodes: Vec<Node>,
    links: Vec<Link>,
    wire: BTreeMap<(Duration, u64), Envelope>,
    wire_seq: u64,
    pub(super) latency: Duration,
    pub(super) bulk_latency: Duration,
    /// Urgent-lane latency of single links `(from, to)`, instead of `latency`.
    pub(super) slow: BTreeMap<(usize, usize), Duration>,
    pub(super) drop: Option<DropRule>,
    rng: StdRng,
    next_key: u64,
    pub(super) sent: Vec<Sent>,
    /// Backlog batches sent by `.0` to `.1` whose ack has not reached `.0`.
    unacked: BTreeMap<(usize, usize), usize>,
    pub(super) max_unacked: usize,
}

impl World {
    /// `n` nodes with ids 1..=n, each configured by `configure`.
    pub(super) fn new(n: usize, seed: u64, configure: impl Fn(&mut Config)) -> World {
        let nodes = (0..n)
            .map(|i| {
                let mut config =
                    Config::new(NodeId::new(i as u64 + 1), format!("n{i}"), format!("r{i}"));
                configure(&mut config);
                Node {
                    engine: Engine::new(config, Frontier::new()),
                    store: Store::default(),
                    auto_persist: true,
                    held: Vec::new(),
                    persisted: Vec::new(),
                    events: Vec::new(),
                    closed: Vec::new(),
                    next_seq: 1,
                }
            })
            .collect();
        World {
            now: T0,
            nodes,
            links: Vec::new(),
            wire: BTreeMap::new(),
            wire_seq: 0,
            latency: Duration::from_millis(10),
            bulk_latency: Duration::from_millis(10),
            slow: BTreeMap::new(),
            drop: None,
            rng: StdRng::seed_from_u64(seed),
            next_key: 1,
            sent: Vec::new(),
            unacked: BTreeMap::new(),
            max_unacked: 0,
        }
    }

    pub(super) fn node_id(&self, i: usize) -> NodeId {
        self.nodes[i].engine.config().node
    }

    /// The key node `i` uses for its connection to `j`, if connected.
    pub(super) fn key(&self, i: usize, j: usize) -> Option<PeerKey> {
        self.links
            .iter()
            .find_map(|l| match (l.a == i && l.b == j, l.b == i && l.a == j) {
                (true, _) => Some(l.ka),
                (_, true) => Some(l.kb),
                _ => None,
            })
    }

    pub(super) fn connect(&mut self, a: usize, b: usize) {
        let (ka, kb) = (PeerKey(self.next_key), PeerKey(self.next_key + 1));
        self.next_key += 2;
        self.links.push(Link { a, ka, b, kb });
        self.input(a, Input::Connected(ka));
        self.input(b, Input::Connected(kb));
    }

    /// Cuts the connection at once: frames in flight are lost.
    pub(super) fn disconnect(&mut self, a: usize, b: usize) {
        let (Some(ka), Some(kb)) = (self.key(a, b), self.key(b, a)) else {
            return;
        };
        self.links.retain(|l| !(l.ka == ka || l.kb == ka));
        self.wire.retain(|_, e| e.key != ka && e.key != kb);
        self.unacked.remove(&(a, b));
        self.unacked.remove(&(b, a));
        self.input(a, Input::Lost(ka));
        self.input(b, Input::Lost(kb));
    }

    /// `count` records revoked at node `i` now, each passed through `edit`.
    pub(super) fn revoke_with(
        &mut self,
        i: usize,
        count: usize,
        edit: impl Fn(&mut Record),
    ) -> Vec<Record> {
        let origin = self.node_id(i);
        let node = &mut self.nodes[i];
        let records: Vec<Record> = (0..count)
            .map(|_| {
                let seq = node.next_seq;
                node.next_seq += 1;
                let mut r = record(origin, seq, node.engine.clock().stamp(self.now));
                edit(&mut r);
                r
            })
            .collect();
        for r in &records {
            assert!(node.store.insert(r.clone()));
        }
        self.input(i, Input::LocalRecords(&records));
        records
    }

    pub(super) fn revoke(&mut self, i: usize, count: usize) -> Vec<Record> {
        self.revoke_with(i, count, |_| {})
    }

    /// Applies node `i`'s held persist requests and reports them durable.
    pub(super) fn flush(&mut self, i: usize) {
        let held = std::mem::take(&mut self.nodes[i].held);
        for (id, records, cover, restore) in held {
            let node = &mut self.nodes[i];
            for r in records {
                node.store.insert(r);
            }
            node.store.cover(&cover);
            for r in restore {
                node.store.restore(r);
            }
            self.input(i, Input::Persisted { id, durable: true });
        }
    }

    /// Fails node `i`'s held persist requests, as a full disk would.
    pub(super) fn fail_held(&mut self, i: usize) {
        let held = std::mem::take(&mut self.nodes[i].held);
        for (id, ..) in held {
            self.input(i, Input::Persisted { id, durable: false });
        }
    }

    /// Gives node `i` one input now, then acts on its outputs.
    pub(super) fn input(&mut self, i: usize, input: Input<'_>) {
        let node = &mut self.nodes[i];
        node.engine
            .handle(Now::both(self.now), input, &mut self.rng, &node.store);
        self.drain(i);
    }

    /// Acts on every output of node `i`.
    pub(super) fn drain(&mut self, i: usize) {
        drain(
            |at: &mut At| at.world.nodes[at.i].engine.poll_output(),
            &mut At { world: self, i },
        );
    }

    fn route(&mut self, from: usize, peer: PeerKey, frame: Vec<u8>, lane: Lane) {
        let Some((to, key)) = self.links.iter().find_map(|l| {
            (l.a == from && l.ka == peer)
                .then_some((l.b, l.kb))
                .or((l.b == from && l.kb == peer).then_some((l.a, l.ka)))
        }) else {
            return;
        };
        assert!(frame.len() <= MAX_FRAME_BYTES);
        // Decoded for the tests' assertions and drop rules.
        let msg = proto::decode(&frame).unwrap();
        self.sent.push(Sent {
            at: self.now,
            from,
            to,
            lane,
            bytes: frame.len(),
            msg: msg.clone(),
        });
        if let Some(drop) = &mut self.drop {
            if drop(from, to, &msg) {
                return;
            }
        }
        if matches!(msg, Message::Records { .. }) {
            let n = self.unacked.entry((from, to)).or_default();
            *n += 1;
            self.max_unacked = self.max_unacked.max(*n);
        }
        let is_ack = matches!(msg, Message::Ack { .. });
        let delay = match lane {
            Lane::Urgent | Lane::Datagram => {
                self.slow.get(&(from, to)).copied().unwrap_or(self.latency)
            }
            Lane::Bulk => self.bulk_latency,
        };
        let what = if lane == Lane::Datagram {
            Delivery::Datagram(frame)
        } else {
            Delivery::Frame(frame)
        };
        self.enqueue(delay, from, to, key, is_ack, what);
    }

    /// Node `i` closed its connection `peer`: the other side learns of it
    /// after the frames already on their way.
    fn close(&mut self, i: usize, peer: PeerKey) {
        let Some(pos) = self
            .links
            .iter()
            .position(|l| (l.a == i && l.ka == peer) || (l.b == i && l.kb == peer))
        else {
            return;
        };
        let l = self.links.remove(pos);
        let (to, key) = if l.a == i { (l.b, l.kb) } else { (l.a, l.ka) };
        let delay = self.latency.max(self.bulk_latency);
        self.enqueue(delay, i, to, key, false, Delivery::Lost);
    }

    fn enqueue(
        &mut self,
        delay: Duration,
        from: usize,
        to: usize,
        key: PeerKey,
        is_ack: bool,
        what: Delivery,
    ) {
        self.wire_seq += 1;
        let envelope = Envelope {
            from,
            to,
            key,
            is_ack,
            what,
        };
        self.wire
            .insert((self.now + delay, self.wire_seq), envelope);
    }

    /// The time of the next delivery or timer.
    fn next_event(&self) -> Option<Duration> {
        let wire = self.wire.keys().next().map(|(at, _)| *at);
        let timers = self.nodes.iter().filter_map(|n| n.engine.next_timeout());
        wire.into_iter().chain(timers).min()
    }

    /// Runs everything due at the next event time. False when nothing is left.
    pub(super) fn step(&mut self) -> bool {
        let Some(at) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(at);
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let e = entry.remove();
            if e.is_ack {
                if let Some(n) = self.unacked.get_mut(&(e.to, e.from)) {
                    *n = n.saturating_sub(1);
                }
            }
            match e.what {
                Delivery::Frame(frame) => self.input(
                    e.to,
                    Input::Frame {
                        peer: e.key,
                        bytes: &frame,
                    },
                ),
                Delivery::Datagram(datagram) => self.input(
                    e.to,
                    Input::Datagram {
                        peer: e.key,
                        bytes: &datagram,
                    },
                ),
                Delivery::Lost => self.input(e.to, Input::Lost(e.key)),
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i]
                .engine
                .next_timeout()
                .is_some_and(|t| t <= self.now)
            {
                self.input(i, Input::Tick);
                // A tick handles everything due: asking to be woken again at
                // once would make a driver spin.
                let next = self.nodes[i].engine.next_timeout();
                assert!(
                    !matches!(next, Some(t) if t <= self.now),
                    "node {i} would spin"
                );
            }
        }
        true
    }

    /// Runs for `d` of simulated time.
    pub(super) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.next_event().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = end;
    }

    /// Runs until `done` holds or `limit` of simulated time has passed;
    /// returns whether it holds.
    pub(super) fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> bool {
        let end = self.now + limit;
        while !done(self) {
            match self.next_event() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => return false,
            }
        }
        true
    }

    /// Whether every node holds the same records and covers the same ids.
    pub(super) fn converged(&self) -> bool {
        let first = &self.nodes[0].store;
        self.nodes
            .iter()
            .all(|n| n.store.digest() == first.digest() && n.store.frontier() == first.frontier())
    }

    /// Records carried by messages from `from` to `to` of the given kind.
    pub(super) fn records_sent(&self, from: usize, to: usize, kind: &str) -> Vec<RecordId> {
        self.sent
            .iter()
            .filter(|s| s.from == from && s.to == to && s.msg.kind() == kind)
            .flat_map(|s| match &s.msg {
                Message::Push { records } | Message::Records { records, .. } => {
                    records.iter().map(|r| r.id).collect()
                }
                _ => Vec::new(),
            })
            .collect()
    }
}

/// A plausible token revocation.
pub(super) fn record(origin: NodeId, seq: u64, hlc: Hlc) -> Record {
    Record {
        id: RecordId { origin, seq },
        hlc,
        target: Target::Token {
            iss: Some("https://idp.example".into()),
            jti: format!("jti-{origin}-{seq}"),
        },
        expires_at: hlc.unix_secs() + 3600,
        reason: "logout".into(),
        actor: "svc-auth".into(),
    }
}

/// Node `i` of a world, as the runtime its engine's outputs go to.
struct At<'a> {
    world: &'a mut World,
    i: usize,
}

impl Runtime for At<'_> {
    fn send(&mut self, peer: PeerKey, frame: Frame, lane: Lane, _kind: MessageKind) {
        self.world.route(self.i, peer, frame.to_vec(), lane);
    }

    fn persist(
        &mut self,
        id: PersistId,
        records: Vec<Record>,
        cover: Frontier,
        restore: Vec<Record>,
    ) {
        let node = &mut self.world.nodes[self.i];
        node.persisted.extend(records.iter().map(|r| r.id));
        node.held.push((id, records, cover, restore));
        if node.auto_persist {
            self.world.flush(self.i);
        }
    }

    fn close(&mut self, peer: PeerKey, reason: String) {
        self.world.nodes[self.i].closed.push((peer, reason));
        self.world.close(self.i, peer);
    }

    fn event(&mut self, event: EngineEvent) {
        self.world.nodes[self.i].events.push(event);
    }
}
