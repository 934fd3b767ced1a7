//! The simulated network: links between nodes, and one QUIC-like connection
//! per node pair.
//!
//! The model follows what the production transport (quinn, see
//! `veto_gossip::transport`) gives the engine:
//!
//! - **Lanes.** A connection has two lanes per direction, each reliable and in
//!   order (two QUIC streams). A message arrives after the link's one-way
//!   latency plus jitter; a lost packet is retransmitted and costs 9/8 of an
//!   RTT more (RFC 9002 loss detection), holding back the rest of its lane.
//!   The bulk lane is paced by the link's bandwidth; the urgent lane is not
//!   held behind it.
//! - **Blocked paths.** A packet sent into, or arriving at, a blocked path is
//!   retransmitted once the path opens, unless the connection dies first.
//! - **Death of a connection.** A side that hears nothing from the other for
//!   the idle timeout drops the connection. A side whose peer forgot the
//!   connection (it crashed and restarted, or dropped it on its own) learns it
//!   from a stateless reset within a keep-alive interval plus an RTT, if the
//!   path is open. A side closed by its engine tells the other side after the
//!   frames already sent.
//! - **Dialling.** Once both sides have dropped a connection, the pair is
//!   redialled with the transport's exponential backoff (with jitter); a dial
//!   to an unreachable or dead node fails after the dial timeout. A node that
//!   (re)starts dials its peers at once.
//! - **Chaos** breaks the transport's contract on purpose: messages dropped
//!   for good, delivered twice, or overtaking earlier ones.

mod conns;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use rand::Rng;
use veto_gossip::engine::PeerKey;

use crate::params::{Chaos, Params, TransportParams};
use crate::regions::RTT_MS;
use crate::rng::{repeats, SimRng};
use crate::sched::{Event, Queue, Time, MS};

/// What the network tells the nodes.
pub(crate) enum NetEffect {
    /// A connection is up at `node`, under `key`.
    Connected { node: usize, key: PeerKey },
    /// The connection `key` at `node` is gone.
    Lost { node: usize, key: PeerKey },
    /// A frame for `node` on connection `key`.
    Deliver {
        node: usize,
        key: PeerKey,
        frame: Vec<u8>,
    },
    /// A datagram for `node` on connection `key`.
    DeliverDatagram {
        node: usize,
        key: PeerKey,
        frame: Vec<u8>,
    },
}

/// The lane number of datagrams: unordered, never retransmitted, dropped
/// when lost or when their path is blocked.
pub(crate) const DATAGRAM_LANE: u8 = 2;

/// Totals, for the report.
#[derive(Clone, Debug, Default)]
pub(crate) struct NetStats {
    pub(crate) connections: u64,
    pub(crate) disconnections: u64,
    pub(crate) dial_failures: u64,
    pub(crate) retransmissions: u64,
    pub(crate) stalled: u64,
    pub(crate) dropped: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    /// Datagrams lost, or sent into a blocked path, and never delivered.
    pub(crate) datagrams_lost: u64,
}

#[derive(Default)]
struct LaneBuf {
    next_send: u64,
    next_deliver: u64,
    held: BTreeMap<u64, Vec<u8>>,
}

struct Stalled {
    lane: u8,
    seq: Option<u64>,
    frame: Vec<u8>,
}

struct Conn {
    pair: usize,
    /// The node at each side; side 0 dialled.
    ends: [usize; 2],
    open: [bool; 2],
    up_at: Time,
    /// By sending side, then lane.
    lanes: [[LaneBuf; 2]; 2],
    silent_since: [Option<Time>; 2],
    doom_at: [Option<Time>; 2],
    /// Packets from each side waiting for a blocked path to open.
    stalled: [Vec<Stalled>; 2],
    /// The latest arrival scheduled from each side.
    last_arrival: [Time; 2],
    /// When each side's bulk lane is free to send again.
    bulk_free: [Time; 2],
}

struct Pair {
    a: usize,
    b: usize,
    conn: Option<u64>,
    connecting: bool,
    token: u64,
    next_dial: Option<Time>,
    backoff: Time,
}

fn key_of(conn: u64, side: usize) -> PeerKey {
    PeerKey(conn * 2 + side as u64)
}

pub(crate) struct Net {
    n: usize,
    one_way: Vec<Time>,
    inter_region: Vec<bool>,
    blocked: Vec<u16>,
    chaos: Vec<Chaos>,
    bouts: BTreeMap<u32, (Vec<(usize, usize)>, Chaos)>,
    partitions: BTreeMap<u32, Vec<(usize, usize)>>,
    base_chaos: Chaos,
    loss: f64,
    jitter: f64,
    /// Nanoseconds per byte on a bulk lane.
    ns_per_byte: f64,
    t: TransportParams,
    pairs: Vec<Pair>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    pub(crate) alive: Vec<bool>,
    rng: SimRng,
    pub(crate) stats: NetStats,
}

impl Net {
    pub(crate) fn new(p: &Params, rng: SimRng) -> Net {
        let n = p.nodes();
        let mut one_way = vec![0; n * n];
        let mut inter_region = vec![false; n * n];
        for a in 0..n {
            for b in 0..n {
                let (ra, rb) = (p.node_regions[a], p.node_regions[b]);
                one_way[a * n + b] = (RTT_MS[ra][rb] / 2.0 * MS as f64) as Time;
                inter_region[a * n + b] = ra != rb;
            }
        }
        let mut pairs = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        for a in 0..n {
            for b in a + 1..n {
                pairs.push(Pair {
                    a,
                    b,
                    conn: None,
                    connecting: false,
                    token: 0,
                    next_dial: None,
                    backoff: p.transport.backoff_min_ms * MS,
                });
            }
        }
        Net {
            n,
            one_way,
            inter_region,
            blocked: vec![0; n * n],
            chaos: vec![p.base_chaos; n * n],
            bouts: BTreeMap::new(),
            partitions: BTreeMap::new(),
            base_chaos: p.base_chaos,
            loss: p.net.loss,
            jitter: p.net.jitter,
            ns_per_byte: 8_000.0 / p.net.bandwidth_mbps.max(1.0),
            t: p.transport.clone(),
            pairs,
            conns: BTreeMap::new(),
            next_conn: 1,
            alive: vec![false; n],
            rng,
            stats: NetStats::default(),
        }
    }

    fn pair_index(&self, a: usize, b: usize) -> usize {
        let (a, b) = if a < b { (a, b) } else { (b, a) };
        // Pairs (a, b) with a < b, row by row.
        a * self.n - a * (a + 1) / 2 + (b - a - 1)
    }

    /// Base one-way latency from `a` to `b`.
    pub(crate) fn one_way(&self, a: usize, b: usize) -> Time {
        self.one_way[a * self.n + b]
    }

    fn rtt(&self, a: usize, b: usize) -> Time {
        self.one_way(a, b) + self.one_way(b, a)
    }

    fn open_path(&self, a: usize, b: usize) -> bool {
        self.blocked[a * self.n + b] == 0
    }

    fn ms(&self, ms: u64) -> Time {
        ms * MS
    }

    /// A wait between half and all of `backoff`, as the dialler draws it.
    fn jittered(&mut self, backoff: Time) -> Time {
        let half = backoff / 2;
        half + self.rng.gen_range(0..=backoff - half)
    }

    /// The loss on link `a -> b` right now.
    fn link_chaos(&self, a: usize, b: usize) -> Chaos {
        let mut c = self.chaos[a * self.n + b];
        if self.inter_region[a * self.n + b] {
            c.loss = 1.0 - (1.0 - c.loss) * (1.0 - self.loss);
        }
        c
    }

    /// When a packet sent now from `a` to `b` arrives, if nothing blocks it.
    fn flight(&mut self, a: usize, b: usize, loss: f64) -> Time {
        let base = self.one_way(a, b);
        let jitter = (base as f64 * self.rng.gen_range(0.0..=self.jitter)) as Time;
        let lost = repeats(&mut self.rng, loss);
        self.stats.retransmissions += u64::from(lost);
        base + jitter + u64::from(lost) * (self.rtt(a, b) * 9 / 8)
    }

    /// Sends a frame on connection `key`'s lane.
    pub(crate) fn send(
        &mut self,
        q: &mut Queue,
        now: Time,
        key: PeerKey,
        lane: u8,
        frame: Vec<u8>,
    ) {
        let (conn_id, side) = (key.0 / 2, (key.0 % 2) as usize);
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        if !conn.open[side] {
            return;
        }
        let (a, b) = (conn.ends[side], conn.ends[1 - side]);
        let chaos = self.link_chaos(a, b);
        if chaos.drop > 0.0 && self.rng.gen_bool(chaos.drop) {
            self.stats.dropped += 1;
            return;
        }
        if lane == DATAGRAM_LANE {
            // One packet, sent once: lost for good or there after one flight.
            let lost = chaos.loss > 0.0 && self.rng.gen_bool(chaos.loss.min(1.0));
            if lost || !self.open_path(a, b) {
                self.stats.datagrams_lost += 1;
                return;
            }
            let base = self.one_way(a, b);
            let jitter = (base as f64 * self.rng.gen_range(0.0..=self.jitter)) as Time;
            q.push(
                now + base + jitter,
                arrive(conn_id, side, lane, None, frame),
            );
            return;
        }
        let unordered = chaos.reorder > 0.0 && self.rng.gen_bool(chaos.reorder);
        let duplicate = chaos.duplicate > 0.0 && self.rng.gen_bool(chaos.duplicate);
        let mut depart = now;
        if lane == 1 {
            let conn = self.conns.get_mut(&conn_id).expect("looked up above");
            let start = conn.bulk_free[side].max(now);
            conn.bulk_free[side] = start + (frame.len() as f64 * self.ns_per_byte) as Time;
            depart = conn.bulk_free[side];
        }
        let mut at = depart + self.flight(a, b, chaos.loss);
        if unordered {
            self.stats.reordered += 1;
            at += self.rng.gen_range(0..=2 * self.rtt(a, b));
        }
        let dup_at = at + self.rng.gen_range(0..=self.rtt(a, b));
        let open = self.open_path(a, b);
        let conn = self.conns.get_mut(&conn_id).expect("looked up above");
        let seq = (!unordered).then(|| {
            let l = &mut conn.lanes[side][lane as usize];
            l.next_send += 1;
            l.next_send - 1
        });
        if duplicate {
            self.stats.duplicated += 1;
            let copy = frame.clone();
            q.push(dup_at, arrive(conn_id, side, lane, None, copy));
        }
        if !open {
            self.stats.stalled += 1;
            conn.stalled[side].push(Stalled { lane, seq, frame });
            return;
        }
        conn.last_arrival[side] = conn.last_arrival[side].max(at);
        q.push(at, arrive(conn_id, side, lane, seq, frame));
    }

    /// A frame reaches the far side of a connection.
    pub(crate) fn arrive(
        &mut self,
        conn_id: u64,
        side: usize,
        lane: u8,
        seq: Option<u64>,
        frame: Vec<u8>,
        out: &mut Vec<NetEffect>,
    ) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        let to = 1 - side;
        if !conn.open[to] {
            return;
        }
        let (a, b) = (conn.ends[side], conn.ends[to]);
        if self.blocked[a * self.n + b] != 0 {
            // Lost on a blocked path: QUIC sends it again once the path opens,
            // if the sender still has the connection; a datagram is gone.
            if lane == DATAGRAM_LANE {
                self.stats.datagrams_lost += 1;
            } else if conn.open[side] {
                self.stats.stalled += 1;
                conn.stalled[side].push(Stalled { lane, seq, frame });
            }
            return;
        }
        let key = key_of(conn_id, to);
        let node = conn.ends[to];
        if lane == DATAGRAM_LANE {
            out.push(NetEffect::DeliverDatagram { node, key, frame });
            return;
        }
        let Some(seq) = seq else {
            out.push(NetEffect::Deliver { node, key, frame });
            return;
        };
        let l = &mut conn.lanes[side][lane as usize];
        if seq < l.next_deliver {
            return;
        }
        l.held.insert(seq, frame);
        while let Some(frame) = l.held.remove(&l.next_deliver) {
            l.next_deliver += 1;
            out.push(NetEffect::Deliver { node, key, frame });
        }
    }

    /// Re-sends what waited on the paths of `conn` that are open again.
    fn release(&mut self, q: &mut Queue, now: Time, conn_id: u64) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let ends = conn.ends;
        for side in 0..2 {
            let (a, b) = (ends[side], ends[1 - side]);
            if !self.open_path(a, b) {
                continue;
            }
            // Retransmitted after a probe timeout of about one RTT.
            let at = now + self.one_way(a, b) + self.rtt(a, b);
            let conn = self.conns.get_mut(&conn_id).expect("looked up above");
            for s in std::mem::take(&mut conn.stalled[side]) {
                conn.last_arrival[side] = conn.last_arrival[side].max(at);
                q.push(at, arrive(conn_id, side, s.lane, s.seq, s.frame));
            }
        }
    }

    fn touch_pairs(&mut self, q: &mut Queue, now: Time, edges: &[(usize, usize)]) {
        let mut pairs: Vec<usize> = edges.iter().map(|&(a, b)| self.pair_index(a, b)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        for pair in pairs {
            if let Some(conn_id) = self.pairs[pair].conn {
                self.release(q, now, conn_id);
                self.evaluate(q, now, conn_id);
            }
        }
    }

    /// Blocks the directed links of partition `id`.
    pub(crate) fn partition(
        &mut self,
        q: &mut Queue,
        now: Time,
        id: u32,
        edges: Vec<(usize, usize)>,
    ) {
        for &(a, b) in &edges {
            self.blocked[a * self.n + b] += 1;
        }
        self.touch_pairs(q, now, &edges);
        self.partitions.insert(id, edges);
    }

    /// Lifts partition `id`.
    pub(crate) fn heal(&mut self, q: &mut Queue, now: Time, id: u32) {
        let Some(edges) = self.partitions.remove(&id) else {
            return;
        };
        for &(a, b) in &edges {
            let c = &mut self.blocked[a * self.n + b];
            *c = c.saturating_sub(1);
        }
        self.touch_pairs(q, now, &edges);
    }

    fn recompute_chaos(&mut self) {
        self.chaos.fill(self.base_chaos);
        for (edges, chaos) in self.bouts.values() {
            for &(a, b) in edges {
                let c = &mut self.chaos[a * self.n + b];
                c.loss = 1.0 - (1.0 - c.loss) * (1.0 - chaos.loss);
                c.drop = c.drop.max(chaos.drop);
                c.duplicate = c.duplicate.max(chaos.duplicate);
                c.reorder = c.reorder.max(chaos.reorder);
            }
        }
    }

    /// Starts bout `id` of chaos on some links.
    pub(crate) fn chaos(&mut self, id: u32, edges: Vec<(usize, usize)>, chaos: Chaos) {
        self.bouts.insert(id, (edges, chaos));
        self.recompute_chaos();
    }

    /// Ends bout `id`.
    pub(crate) fn calm(&mut self, id: u32) {
        self.bouts.remove(&id);
        self.recompute_chaos();
    }

    /// Every partition and every bout of chaos ends; loss stops.
    pub(crate) fn heal_all(&mut self, q: &mut Queue, now: Time) {
        self.partitions.clear();
        self.blocked.fill(0);
        self.bouts.clear();
        self.base_chaos = Chaos::default();
        self.loss = 0.0;
        self.recompute_chaos();
        let conns: Vec<u64> = self.conns.keys().copied().collect();
        for conn_id in conns {
            self.release(q, now, conn_id);
            self.evaluate(q, now, conn_id);
        }
    }

    /// The largest RTT between any two nodes, with jitter.
    pub(crate) fn max_rtt(&self) -> Time {
        let max = self.one_way.iter().copied().max().unwrap_or(0) * 2;
        (max as f64 * (1.0 + self.jitter)) as Time
    }
}

fn arrive(conn: u64, side: usize, lane: u8, seq: Option<u64>, frame: Vec<u8>) -> Event {
    Event::Arrive {
        conn,
        dir: side as u8,
        lane,
        seq,
        frame,
    }
}
