//! Protocol rules, one engine driven by hand.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use veto_core::{Frontier, Hlc, NodeId, Record};

use super::harness::{record, T0};
use super::store::Store;
use crate::engine::{Config, Engine, EngineEvent, Lane, Now, Output, PeerKey, PersistId};
use crate::proto::ClockSample;
use crate::proto::{self, FrontierSummary, Hello, Message, PROTOCOL_VERSION};

const PEER: PeerKey = PeerKey(7);
fn remote() -> NodeId {
    NodeId::new(99)
}

struct Rig {
    engine: Engine,
    store: Store,
    rng: StdRng,
}

fn rig() -> Rig {
    Rig {
        engine: Engine::new(Config::new(NodeId::new(1), "here", "eu"), Frontier::new()),
        store: Store::default(),
        rng: StdRng::seed_from_u64(5),
    }
}

fn hello(version: u32) -> Message {
    Message::Hello(Hello {
        version,
        node: remote(),
        name: "there".into(),
        region: "us".into(),
        sent_at: T0.as_nanos() as u64,
    })
}

impl Rig {
    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.engine.poll_output()).collect()
    }

    fn feed(&mut self, now: Duration, msg: Message) -> Vec<Output> {
        self.engine
            .handle_message(Now::both(now), PEER, msg, &mut self.rng, &self.store);
        self.drain()
    }

    fn established() -> Rig {
        let mut r = rig();
        r.engine.peer_connected(Now::both(T0), PEER);
        r.feed(T0, hello(PROTOCOL_VERSION));
        r
    }
}

/// The messages sent, decoded from their frames.
fn sent(outs: &[Output]) -> Vec<Message> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { frame, .. } => Some(proto::decode(frame).unwrap()),
            _ => None,
        })
        .collect()
}

fn persisted(outs: &[Output]) -> Vec<(PersistId, Vec<Record>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Persist { id, records, .. } => Some((*id, records.clone())),
            _ => None,
        })
        .collect()
}

fn closed(outs: &[Output]) -> Option<&str> {
    outs.iter().find_map(|o| match o {
        Output::Close { reason, .. } => Some(reason.as_str()),
        _ => None,
    })
}

fn remote_record(seq: u64) -> Record {
    record(
        remote(),
        seq,
        Hlc::from_unix(T0 - Duration::from_millis(40)),
    )
}

#[test]
fn connecting_sends_hello_then_digest_after_theirs() {
    let mut r = rig();
    r.engine.peer_connected(Now::both(T0), PEER);
    let outs = r.drain();
    assert!(matches!(
        outs.as_slice(),
        [Output::Send {
            lane: Lane::Urgent,
            ..
        }]
    ));
    assert!(matches!(
        &sent(&outs)[..],
        [Message::Hello(h)] if h.version == PROTOCOL_VERSION && h.name == "here"
    ));
    let outs = r.feed(T0, hello(PROTOCOL_VERSION));
    assert!(matches!(sent(&outs)[..], [Message::Digest { .. }]));
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Event(EngineEvent::PeerUp { node, .. }) if *node == remote()
    )));
}

/// A node of version 6 sends a `Hello` without `sent_at`, which does not
/// decode as this version's: it is still refused as a version mismatch.
#[test]
fn a_hello_of_an_older_layout_is_refused_as_a_version_mismatch() {
    let mut here = rig();
    here.engine.peer_connected(Now::both(T0), PEER);
    here.drain();
    let Message::Hello(mut old) = hello(6) else {
        unreachable!("hello() makes a Hello");
    };
    old.sent_at = 1_700_000_000_000_000_000;
    let mut frame = proto::encode(&Message::Hello(old)).unwrap();
    // Version 6 had no `sent_at`, the last field (a varint of 9 bytes here).
    frame.truncate(frame.len() - 9);
    here.engine
        .handle_frame(Now::both(T0), PEER, &frame, &mut here.rng, &here.store);
    let outs = here.drain();
    let reason = closed(&outs).expect("closed");
    assert!(
        reason.contains("protocol version mismatch: peer speaks version 6"),
        "{reason}"
    );
}

#[test]
fn a_version_mismatch_is_refused_with_a_reason_on_both_sides() {
    let mut here = rig();
    here.engine.peer_connected(Now::both(T0), PEER);
    here.drain();
    let outs = here.feed(T0, hello(PROTOCOL_VERSION + 8));
    let reason = closed(&outs).expect("closed");
    assert!(reason.contains("protocol version mismatch"), "{reason}");
    assert!(reason.contains(&format!("version {}", PROTOCOL_VERSION + 8)));
    let goodbye = sent(&outs)
        .into_iter()
        .find(|m| matches!(m, Message::Goodbye { .. }))
        .expect("goodbye")
        .clone();
    assert!(here.engine.peer_stats(PEER).is_none());

    // The other side reads the goodbye, whatever its version, and closes too.
    let mut there = rig();
    there.engine.peer_connected(Now::both(T0), PEER);
    there.drain();
    let frame = proto::encode(&goodbye).unwrap();
    there
        .engine
        .handle_frame(Now::both(T0), PEER, &frame, &mut there.rng, &there.store);
    let outs = there.drain();
    let theirs = closed(&outs).expect("closed");
    assert!(theirs.contains("peer closed the connection: protocol version mismatch"));
    assert!(sent(&outs).is_empty());
}

#[test]
fn protocol_violations_close_the_connection() {
    let ack = Message::Ack { batch_id: 1 };
    let cases: Vec<(Vec<Message>, &str)> = vec![
        (vec![ack.clone()], "Ack before Hello"),
        (
            vec![hello(PROTOCOL_VERSION), hello(PROTOCOL_VERSION)],
            "second Hello",
        ),
        (
            vec![Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                node: NodeId::new(1),
                name: "me".into(),
                region: "eu".into(),
                sent_at: 1_700_000_000_000_000_000,
            })],
            "own id",
        ),
        (
            vec![
                hello(PROTOCOL_VERSION),
                Message::Push {
                    records: vec![remote_record(0)],
                },
            ],
            "seq 0",
        ),
    ];
    for (msgs, expect) in cases {
        let mut r = rig();
        r.engine.peer_connected(Now::both(T0), PEER);
        let outs: Vec<Output> = msgs.into_iter().flat_map(|m| r.feed(T0, m)).collect();
        let reason = closed(&outs).unwrap_or_else(|| panic!("not closed: {expect}"));
        assert!(reason.contains(expect), "{reason:?} lacks {expect:?}");
        assert!(sent(&outs)
            .iter()
            .any(|m| matches!(m, Message::Goodbye { reason: g } if g == reason)));
        assert_eq!(r.engine.stats().violations, 1);
    }
}

#[test]
fn an_undecodable_frame_closes_the_connection() {
    let mut r = Rig::established();
    r.drain();
    r.engine
        .handle_frame(Now::both(T0), PEER, &[3, 0xff, 0xff], &mut r.rng, &r.store);
    let outs = r.drain();
    assert!(closed(&outs).unwrap().contains("undecodable"));
}

#[test]
fn a_silent_peer_is_closed_after_the_handshake_timeout() {
    let mut r = rig();
    r.engine.peer_connected(Now::both(T0), PEER);
    r.drain();
    let deadline = r.engine.next_timeout().unwrap();
    assert_eq!(deadline, T0 + Duration::from_secs(10));
    r.engine.tick(Now::both(deadline), &mut r.rng, &r.store);
    assert!(closed(&r.drain()).unwrap().contains("no Hello"));
}

#[test]
fn a_stamp_far_ahead_is_stored_and_reported() {
    let mut r = Rig::established();
    let mut ahead = remote_record(1);
    ahead.hlc = Hlc::from_unix(T0 + Duration::from_secs(60));
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![ahead.clone()],
        },
    );
    assert_eq!(persisted(&outs)[0].1, vec![ahead.clone()]);
    let report = outs.iter().find_map(|o| match o {
        Output::Event(EngineEvent::ClockAhead { record, ahead, .. }) => Some((*record, *ahead)),
        _ => None,
    });
    assert_eq!(report, Some((ahead.id, Duration::from_secs(60))));
    assert_eq!(r.engine.stats().clock_ahead, 1);
    // The local clock did not jump to the bad stamp.
    assert!(r.engine.clock().stamp(T0) < ahead.hlc);
}

#[test]
fn duplicates_are_counted_and_persisted_once() {
    let mut r = Rig::established();
    let (x, y) = (remote_record(1), remote_record(2));
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![x.clone(), x.clone()],
        },
    );
    let first = persisted(&outs);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, vec![x.clone()]);
    assert_eq!(r.engine.stats().duplicates, 1);

    // x is on its way to disk: not asked again.
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![x.clone()],
        },
    );
    assert!(persisted(&outs).is_empty());

    // A batch with x and y: y is persisted, and the ack waits for both.
    let outs = r.feed(
        T0,
        Message::Records {
            batch_id: 1,
            records: vec![x.clone(), y.clone()],
            cleared: vec![],
        },
    );
    let second = persisted(&outs);
    assert_eq!(second[0].1, vec![y.clone()]);
    assert!(sent(&outs).is_empty());
    r.engine.records_durable(Now::both(T0), second[0].0);
    assert!(sent(&r.drain()).is_empty(), "acked before x was durable");
    r.engine.records_durable(Now::both(T0), first[0].0);
    let outs = r.drain();
    assert!(matches!(sent(&outs)[..], [Message::Ack { batch_id: 1 }]));

    // Durable now (and in the store): a further copy is a duplicate, and its
    // batch is acked at once.
    r.store.insert(x.clone());
    r.store.insert(y.clone());
    let outs = r.feed(
        T0,
        Message::Records {
            batch_id: 2,
            records: vec![x.clone()],
            cleared: vec![],
        },
    );
    assert!(persisted(&outs).is_empty());
    assert!(matches!(sent(&outs)[..], [Message::Ack { batch_id: 2 }]));
    assert_eq!(r.engine.stats().duplicates, 4);
    assert_eq!(r.engine.peer_stats(PEER).unwrap().duplicates_in, 4);
}

#[test]
fn only_durable_records_are_advertised() {
    let mut r = Rig::established();
    let x = remote_record(1);
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![x.clone()],
        },
    );
    let (id, _) = persisted(&outs)[0].clone();
    // In a round, the digest of the state the node advertises.
    let advertised = |r: &mut Rig| {
        let at = r.engine.next_timeout().unwrap();
        r.engine.tick(Now::both(at), &mut r.rng, &r.store);
        sent(&r.drain())
            .into_iter()
            .find_map(|m| match m {
                Message::Digest { state, .. } => Some(state),
                _ => None,
            })
            .expect("a digest each round")
    };
    let mut with_x = Frontier::new();
    with_x.insert(x.id);
    let without = proto::state_digest(&Frontier::new(), &[]);
    let with = proto::state_digest(&with_x, &[]);
    assert_ne!(without, with);
    assert_eq!(advertised(&mut r), without);
    r.engine.records_durable(Now::both(T0), id);
    assert_eq!(advertised(&mut r), with);
}

#[test]
fn a_failed_persist_lets_the_record_in_again() {
    let mut r = Rig::established();
    let x = remote_record(1);
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![x.clone()],
        },
    );
    r.engine
        .persist_failed(Now::both(T0), persisted(&outs)[0].0);
    assert_eq!(r.engine.stats().persisting, 0);
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![x.clone()],
        },
    );
    assert_eq!(persisted(&outs)[0].1, vec![x]);
    assert_eq!(r.engine.stats().persist_failures, 1);
}

/// A backlog batch whose persist failed is acknowledged all the same: the
/// sender's window frees at once, and the frontier (which still lacks the
/// records) makes it send them again, instead of waiting out its ack timeout.
#[test]
fn a_batch_that_failed_to_persist_is_acked_and_not_advertised() {
    let mut r = Rig::established();
    let x = remote_record(1);
    let outs = r.feed(
        T0,
        Message::Records {
            batch_id: 9,
            records: vec![x.clone()],
            cleared: vec![],
        },
    );
    assert!(sent(&outs).is_empty(), "no ack before the persist is done");
    r.engine
        .persist_failed(Now::both(T0), persisted(&outs)[0].0);
    let outs = r.drain();
    assert!(matches!(sent(&outs)[..], [Message::Ack { batch_id: 9 }]));
    assert!(!r.engine.frontier().contains(x.id));
}

#[test]
fn a_peer_ignoring_backpressure_is_closed() {
    let mut r = Rig::established();
    let mut reason = None;
    for batch_id in 1..=200 {
        let outs = r.feed(
            T0,
            Message::Records {
                batch_id,
                records: vec![remote_record(batch_id)],
                cleared: vec![],
            },
        );
        if let Some(why) = closed(&outs) {
            reason = Some((batch_id, why.to_owned()));
            break;
        }
    }
    let (at, why) = reason.expect("closed");
    assert_eq!(at, 65);
    assert!(why.contains("backpressure"));
}

#[test]
fn an_empty_peer_gets_everything_and_cleared_gaps() {
    let mut r = Rig::established();
    let me = NodeId::new(1);
    let mut mine = Vec::new();
    for seq in [1, 2, 5, 6] {
        let rec = record(me, seq, Hlc::from_unix(T0));
        r.store.insert(rec.clone());
        mine.push(rec);
    }
    // Seqs 3, 4 and 7 were pruned here: covered, not stored.
    let mut covered = Frontier::new();
    covered.insert_range(me, 1..=7);
    r.store.cover(&covered);
    r.engine = Engine::new(Config::new(me, "here", "eu"), covered);
    r.engine.peer_connected(Now::both(T0), PEER);
    r.feed(T0, hello(PROTOCOL_VERSION));
    let outs = r.feed(
        T0,
        Message::Frontier {
            summary: FrontierSummary::default(),
            holdings: Vec::new(),
            clock: ClockSample::default(),
            indirect: Vec::new(),
            expected: Vec::new(),
            reports: Vec::new(),
            direct: None,
        },
    );
    // A frontier back at once (the peer had no clock sample of ours), and no
    // backlog yet: the peer sent its first frontier before it heard ours, so
    // it could not yet say what it expects from others.
    assert!(matches!(&sent(&outs)[..], [Message::Frontier { .. }]));
    let ours = match &sent(&outs)[0] {
        Message::Frontier { clock, .. } => clock.sent_at,
        _ => unreachable!(),
    };
    let outs = r.feed(
        T0,
        Message::Frontier {
            summary: FrontierSummary::default(),
            holdings: Vec::new(),
            clock: ClockSample {
                sent_at: T0.as_nanos() as u64,
                echo: ours,
                held: 0,
            },
            indirect: Vec::new(),
            expected: Vec::new(),
            reports: Vec::new(),
            direct: None,
        },
    );
    match &sent(&outs)[..] {
        [Message::Records {
            batch_id: 1,
            records,
            cleared,
        }] => {
            assert_eq!(records, &mine);
            assert_eq!(cleared, &vec![(me, vec![3..=4, 7..=7])]);
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(r.engine.peer_stats(PEER).unwrap().lag, Some(7));
}

#[test]
fn the_engine_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Engine>();
    send::<Output>();
}

/// Two records under one id mean an origin reused a seq: the stored one
/// stays, the other is refused and reported.
#[test]
fn a_conflicting_record_is_refused_and_counted() {
    let mut r = Rig::established();
    let x = remote_record(1);
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![x.clone()],
        },
    );
    let (id, _) = persisted(&outs)[0].clone();
    r.store.insert(x.clone());
    r.engine.records_durable(Now::both(T0), id);
    let mut other = x.clone();
    other.reason = "a different revocation under the same id".into();
    let outs = r.feed(
        T0,
        Message::Push {
            records: vec![other],
        },
    );
    assert!(persisted(&outs).is_empty());
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Event(EngineEvent::Conflict { record, .. }) if *record == x.id
    )));
    assert_eq!(r.engine.stats().conflicts, 1);
    assert_eq!(r.store.get(x.id), Some(&x));
}

/// A peer whose clock reads three days ahead of ours, measured through the
/// round trip of the frontiers' clock samples, is more than the maximum
/// offset away; it is our only peer, so the verdict is that we are skewed.
#[test]
fn clock_samples_measure_the_offset_and_give_a_verdict() {
    use crate::engine::ClockVerdict;
    let mut r = Rig::established();
    assert_eq!(r.engine.clock_check().verdict, ClockVerdict::Unconfirmed);
    let ahead = Duration::from_secs(3 * 86_400);
    let d = Duration::from_millis(40);
    let first = r.feed(
        T0,
        Message::Frontier {
            summary: FrontierSummary::default(),
            holdings: Vec::new(),
            clock: ClockSample {
                sent_at: (T0 + ahead - d).as_nanos() as u64,
                echo: 0,
                held: 0,
            },
            indirect: Vec::new(),
            expected: Vec::new(),
            reports: Vec::new(),
            direct: None,
        },
    );
    // Answered at once with a sample the peer can measure with.
    let ours = sent(&first)
        .into_iter()
        .find_map(|m| match m {
            Message::Frontier { clock, .. } => Some(clock),
            _ => None,
        })
        .expect("a frontier back");
    assert_eq!(ours.echo, (T0 + ahead - d).as_nanos() as u64);
    let back = T0 + 2 * d;
    let outs = r.feed(
        back,
        Message::Frontier {
            summary: FrontierSummary::default(),
            holdings: Vec::new(),
            clock: ClockSample {
                sent_at: (T0 + d + ahead).as_nanos() as u64,
                echo: ours.sent_at,
                held: 0,
            },
            indirect: Vec::new(),
            expected: Vec::new(),
            reports: Vec::new(),
            direct: None,
        },
    );
    let check = r.engine.clock_check();
    assert_eq!(check.verdict, ClockVerdict::Skewed);
    assert_eq!(check.offset_ns, Some(-(ahead.as_nanos() as i64)));
    assert!(outs
        .iter()
        .any(|o| matches!(o, Output::Event(EngineEvent::ClockVerdict(c)) if c.verdict == ClockVerdict::Skewed)));
    r.engine.peer_lost(Now::both(back), PEER);
    assert_eq!(r.engine.clock_check().verdict, ClockVerdict::Unconfirmed);
}
