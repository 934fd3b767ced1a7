//! Copies of pushes as datagrams: who gets them and when, and what a
//! receiver does with datagrams, good and bad.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use veto_core::{Frontier, Hlc, NodeId, Record};

use super::harness::{record, T0};
use super::store::Store;
use crate::engine::{Config, Engine, EngineEvent, Lane, Now, Output, PeerKey, Via};
use crate::proto::{self, Hello, Message, PROTOCOL_VERSION};

const PEER: PeerKey = PeerKey(3);
const HERE: &str = "eu";

struct Rig {
    engine: Engine,
    store: Store,
    rng: StdRng,
}

impl Rig {
    /// This node, in region `eu`, connected to one peer in `peer_region`.
    fn with_peer_in(peer_region: &str) -> Rig {
        let mut r = Rig {
            engine: Engine::new(Config::new(NodeId::new(1), "here", HERE), Frontier::new()),
            store: Store::default(),
            rng: StdRng::seed_from_u64(9),
        };
        r.engine.peer_connected(Now::both(T0), PEER);
        r.feed(T0, hello(peer_region));
        r.drain();
        r
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.engine.poll_output()).collect()
    }

    fn feed(&mut self, now: Duration, msg: Message) -> Vec<Output> {
        self.engine
            .handle_message(Now::both(now), PEER, msg, &mut self.rng, &self.store);
        self.drain()
    }

    fn datagram(&mut self, now: Duration, bytes: &[u8]) -> Vec<Output> {
        self.engine
            .handle_datagram(Now::both(now), PEER, bytes, &self.store);
        self.drain()
    }

    fn tick(&mut self, now: Duration) -> Vec<Output> {
        self.engine.tick(Now::both(now), &mut self.rng, &self.store);
        self.drain()
    }

    /// Revokes `records` here and returns what went out at once.
    fn revoke(&mut self, records: &[Record]) -> Vec<Output> {
        self.engine.local_records(Now::both(T0), records);
        self.drain()
    }
}

fn hello(region: &str) -> Message {
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        node: NodeId::new(99),
        name: "there".into(),
        region: region.into(),
        sent_at: 1_700_000_000_000_000_000,
    })
}

fn local(seq: u64) -> Record {
    record(NodeId::new(1), seq, Hlc::from_unix(T0))
}

fn remote(seq: u64) -> Record {
    record(NodeId::new(99), seq, Hlc::from_unix(T0))
}

/// The frames sent on `lane`.
fn on_lane(outs: &[Output], lane: Lane) -> Vec<Vec<u8>> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { frame, lane: l, .. } if *l == lane => Some(frame.to_vec()),
            _ => None,
        })
        .collect()
}

fn persisted(outs: &[Output]) -> usize {
    outs.iter()
        .filter(|o| matches!(o, Output::Persist { .. }))
        .count()
}

fn dropped(outs: &[Output]) -> Vec<&'static str> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Event(EngineEvent::DatagramDropped { reason, .. }) => Some(*reason),
            _ => None,
        })
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_push_to_another_region_is_sent_again_as_two_datagrams_5_and_20_ms_later() {
    let mut r = Rig::with_peer_in("us");
    let outs = r.revoke(&[local(1)]);
    let push = on_lane(&outs, Lane::Urgent);
    assert_eq!(push.len(), 1, "the push itself, on the urgent lane");
    assert!(on_lane(&outs, Lane::Datagram).is_empty(), "no copy at once");
    assert_eq!(r.engine.next_timeout(), Some(T0 + ms(5)));

    assert!(on_lane(&r.tick(T0 + ms(4)), Lane::Datagram).is_empty());
    assert_eq!(on_lane(&r.tick(T0 + ms(5)), Lane::Datagram), push);
    assert_eq!(r.engine.next_timeout(), Some(T0 + ms(20)));
    assert_eq!(on_lane(&r.tick(T0 + ms(20)), Lane::Datagram), push);
    assert!(on_lane(&r.tick(T0 + ms(40)), Lane::Datagram).is_empty());
    assert!(
        r.engine.next_timeout().is_some_and(|t| t > T0 + ms(40)),
        "no copy left to wait for"
    );
}

#[test]
fn peers_in_this_region_get_no_copies() {
    let mut r = Rig::with_peer_in(HERE);
    assert_eq!(on_lane(&r.revoke(&[local(1)]), Lane::Urgent).len(), 1);
    assert!(on_lane(&r.tick(T0 + ms(30)), Lane::Datagram).is_empty());
}

#[test]
fn a_push_larger_than_one_packet_gets_no_copies() {
    let mut r = Rig::with_peer_in("us");
    let burst: Vec<Record> = (1..=50).map(local).collect();
    let outs = r.revoke(&burst);
    assert!(on_lane(&outs, Lane::Urgent)[0].len() > 1100);
    assert!(on_lane(&r.tick(T0 + ms(30)), Lane::Datagram).is_empty());
}

#[test]
fn copies_for_a_connection_that_closed_are_not_sent() {
    let mut r = Rig::with_peer_in("us");
    r.revoke(&[local(1)]);
    r.engine.peer_lost(Now::both(T0 + ms(1)), PEER);
    r.drain();
    assert!(on_lane(&r.tick(T0 + ms(30)), Lane::Datagram).is_empty());
    assert_eq!(r.engine.next_timeout(), None);
}

#[test]
fn a_copy_that_comes_first_is_taken_in_and_the_push_behind_it_is_a_duplicate() {
    let mut r = Rig::with_peer_in("us");
    let push = Message::Push {
        records: vec![remote(1)],
    };
    let bytes = proto::encode(&push).expect("encodes");
    let outs = r.datagram(T0 + ms(50), &bytes);
    assert_eq!(persisted(&outs), 1, "the copy's record goes to disk");
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Event(EngineEvent::Received {
            via: Via::Echo,
            new: 1,
            ..
        })
    )));
    let outs = r.feed(T0 + ms(60), push);
    assert_eq!(persisted(&outs), 0, "the push is a duplicate");
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Event(EngineEvent::Received {
            via: Via::Push,
            new: 0,
            duplicates: 1,
            ..
        })
    )));
}

#[test]
fn datagrams_that_are_not_a_push_are_dropped_without_closing_the_connection() {
    let mut r = Rig::with_peer_in("us");
    let hello = proto::encode(&hello("us")).expect("encodes");
    let ack = proto::encode(&Message::Ack { batch_id: 1 }).expect("encodes");
    let mut outs = r.datagram(T0, &[0xff, 0x00, 0x13]);
    outs.extend(r.datagram(T0, &hello));
    outs.extend(r.datagram(T0, &ack));
    assert_eq!(dropped(&outs), ["undecodable", "not a push", "not a push"]);
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Close { .. })),
        "a datagram never closes the connection"
    );
    // The connection still takes pushes.
    let push = Message::Push {
        records: vec![remote(1)],
    };
    assert_eq!(persisted(&r.feed(T0, push)), 1);
}

#[test]
fn a_copy_that_overtakes_the_handshake_is_dropped() {
    let mut r = Rig {
        engine: Engine::new(Config::new(NodeId::new(1), "here", HERE), Frontier::new()),
        store: Store::default(),
        rng: StdRng::seed_from_u64(9),
    };
    r.engine.peer_connected(Now::both(T0), PEER);
    r.drain();
    let push = proto::encode(&Message::Push {
        records: vec![remote(1)],
    })
    .expect("encodes");
    let outs = r.datagram(T0, &push);
    assert_eq!(dropped(&outs), ["before the handshake"]);
    assert_eq!(persisted(&outs), 0);
    assert!(!outs.iter().any(|o| matches!(o, Output::Close { .. })));
    // The handshake then goes ahead as usual.
    let outs = r.feed(T0, hello("us"));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Event(EngineEvent::PeerUp { .. }))));
}
