//! The network model on its own: two nodes, one connection, frames in and out.

use veto_gossip::engine::PeerKey;

use crate::net::{Net, NetEffect};
use crate::params::{Chaos, Params};
use crate::rng::{stream, Stream};
use crate::scenarios::{Overrides, Scenario, Size};
use crate::sched::{Event, Queue, Time, MS, SEC};

/// us-east-1 and eu-west-1: 75 ms RTT.
fn two_nodes() -> Params {
    let ov = Overrides {
        nodes: Some(2),
        ..Overrides::default()
    };
    let mut p = Scenario::Healthy5Regions.params_with(1, Size::Quick, &ov);
    p.net.jitter = 0.0;
    p
}

#[derive(Debug, PartialEq)]
enum Seen {
    Up(usize),
    Lost(usize),
    Frame(usize, Vec<u8>),
}

struct Harness {
    net: Net,
    q: Queue,
    now: Time,
    seen: Vec<(Time, Seen)>,
    keys: [Option<PeerKey>; 2],
}

impl Harness {
    fn new(p: &Params) -> Harness {
        let mut h = Harness {
            net: Net::new(p, stream(p.seed, Stream::Net)),
            q: Queue::default(),
            now: 0,
            seen: Vec::new(),
            keys: [None, None],
        };
        h.net.start(&mut h.q, 0, 0);
        h.net.start(&mut h.q, 0, 1);
        h.run_until(SEC);
        assert!(h.keys[0].is_some() && h.keys[1].is_some(), "{:?}", h.seen);
        h
    }

    fn run_until(&mut self, until: Time) {
        while let Some((at, event)) = self.q.pop() {
            if at > until {
                self.q.push(at, event);
                break;
            }
            self.now = at;
            let mut fx = Vec::new();
            match event {
                Event::Arrive {
                    conn,
                    dir,
                    lane,
                    seq,
                    frame,
                } => self
                    .net
                    .arrive(conn, usize::from(dir), lane, seq, frame, &mut fx),
                Event::SideCheck { conn, side } => {
                    self.net
                        .side_check(&mut self.q, at, conn, usize::from(side), &mut fx)
                }
                Event::Dial { pair, token } => self.net.dial(&mut self.q, at, pair, token),
                Event::ConnUp { pair, token } => {
                    self.net.conn_up(&mut self.q, at, pair, token, &mut fx)
                }
                _ => unreachable!("only network events here"),
            }
            for effect in fx {
                let seen = match effect {
                    NetEffect::Connected { node, key } => {
                        self.keys[node] = Some(key);
                        Seen::Up(node)
                    }
                    NetEffect::Lost { node, .. } => {
                        self.keys[node] = None;
                        Seen::Lost(node)
                    }
                    NetEffect::Deliver { node, frame, .. }
                    | NetEffect::DeliverDatagram { node, frame, .. } => Seen::Frame(node, frame),
                };
                self.seen.push((at, seen));
            }
        }
        self.now = until;
    }

    fn send(&mut self, from: usize, lane: u8, frames: impl IntoIterator<Item = u32>) {
        let key = self.keys[from].expect("connected");
        for i in frames {
            self.net
                .send(&mut self.q, self.now, key, lane, i.to_be_bytes().to_vec());
        }
    }

    fn frames_at(&self, node: usize) -> Vec<u32> {
        self.seen
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Frame(n, f) if *n == node => {
                    Some(u32::from_be_bytes([f[0], f[1], f[2], f[3]]))
                }
                _ => None,
            })
            .collect()
    }

    fn lost_at(&self, node: usize) -> Vec<Time> {
        self.seen
            .iter()
            .filter(|(_, s)| *s == Seen::Lost(node))
            .map(|(t, _)| *t)
            .collect()
    }
}

#[test]
fn a_lane_stays_in_order_through_heavy_loss() {
    let mut h = Harness::new(&two_nodes());
    let edges = vec![(0, 1)];
    let chaos = Chaos {
        loss: 0.5,
        ..Chaos::default()
    };
    h.net.chaos(1, edges, chaos);
    let start = h.now;
    h.send(0, 0, 0..200);
    h.run_until(start + 60 * SEC);
    assert_eq!(h.frames_at(1), (0..200).collect::<Vec<_>>());
    assert!(h.net.stats.retransmissions > 50);
    // Each loss costs 9/8 of the 75 ms RTT, and holds back the lane.
    let last = h.seen.last().map(|(t, _)| *t).unwrap_or(0);
    assert!(last - start > 37 * MS + 84 * MS, "{}", last - start);
}

#[test]
fn reordering_chaos_lets_frames_overtake() {
    let mut h = Harness::new(&two_nodes());
    let chaos = Chaos {
        reorder: 0.5,
        ..Chaos::default()
    };
    h.net.chaos(1, vec![(0, 1)], chaos);
    h.send(0, 0, 0..200);
    h.run_until(h.now + 10 * SEC);
    let got = h.frames_at(1);
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..200).collect::<Vec<_>>());
    assert_ne!(got, sorted, "nothing overtook anything");
}

#[test]
fn a_partition_shorter_than_the_idle_timeout_only_delays() {
    let mut h = Harness::new(&two_nodes());
    h.net.partition(&mut h.q, h.now, 1, vec![(0, 1), (1, 0)]);
    h.send(0, 1, 0..10);
    let cut = h.now;
    h.run_until(cut + 3 * SEC);
    assert!(h.frames_at(1).is_empty());
    h.net.heal(&mut h.q, h.now, 1);
    h.run_until(h.now + SEC);
    assert_eq!(h.frames_at(1), (0..10).collect::<Vec<_>>());
    assert!(h.lost_at(0).is_empty() && h.lost_at(1).is_empty());
}

#[test]
fn a_long_partition_kills_the_connection_and_it_is_redialled_after() {
    let mut h = Harness::new(&two_nodes());
    let cut = h.now;
    h.net.partition(&mut h.q, cut, 1, vec![(0, 1), (1, 0)]);
    h.send(0, 0, 0..5);
    h.run_until(cut + 30 * SEC);
    // Both sides time out after exactly the idle timeout, and the frames die.
    assert_eq!(h.lost_at(0), vec![cut + 10 * SEC]);
    assert_eq!(h.lost_at(1), vec![cut + 10 * SEC]);
    assert!(h.keys.iter().all(Option::is_none));
    h.net.heal(&mut h.q, h.now, 1);
    // The backoff has grown during the failed dials, up to 10 s, and a dial
    // under way fails after 5 s.
    h.run_until(h.now + 16 * SEC);
    assert!(h.keys.iter().all(Option::is_some), "{:?}", h.seen);
    assert!(h.frames_at(1).is_empty());
}

#[test]
fn a_one_way_partition_kills_the_deaf_side_first() {
    let mut h = Harness::new(&two_nodes());
    let cut = h.now;
    h.net.partition(&mut h.q, cut, 1, vec![(0, 1)]);
    h.run_until(cut + 30 * SEC);
    // Node 1 hears nothing and gives up after the idle timeout; node 0 still
    // hears node 1 until then, and gives up one idle timeout later.
    assert_eq!(h.lost_at(1), vec![cut + 10 * SEC]);
    assert_eq!(h.lost_at(0), vec![cut + 20 * SEC]);
}

#[test]
fn a_peer_that_restarted_is_noticed_by_a_stateless_reset() {
    let mut h = Harness::new(&two_nodes());
    let crash = h.now;
    h.net.crash(&mut h.q, crash, 1);
    h.run_until(crash + 2 * SEC);
    assert!(
        h.lost_at(0).is_empty(),
        "a dead peer is only noticed by the idle timeout"
    );
    h.net.start(&mut h.q, h.now, 1);
    let restart = h.now;
    h.run_until(restart + 5 * SEC);
    let lost = h.lost_at(0);
    assert_eq!(lost.len(), 1);
    // Within a keep-alive interval and a round trip.
    assert!(
        lost[0] - restart <= 2 * SEC + 75 * MS,
        "{}",
        lost[0] - restart
    );
    assert!(h.keys.iter().all(Option::is_some), "{:?}", h.seen);
}
