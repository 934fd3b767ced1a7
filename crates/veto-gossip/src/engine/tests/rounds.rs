//! Anti-entropy rounds: digests between nodes in sync, frontiers where they
//! differ, and a bounded number of rounds per period however many peers.

use std::time::Duration;

use super::harness::World;
use crate::engine::reports::{ReportLink, Reports};
use crate::proto::{through_digest, Message, Report, ReportState};
use veto_core::NodeId;

fn mesh(w: &mut World) {
    let n = w.nodes.len();
    for a in 0..n {
        for b in a + 1..n {
            w.connect(a, b);
        }
    }
}

#[test]
fn nodes_in_sync_exchange_only_small_digests() {
    let mut w = World::new(3, 81, |c| {
        c.anti_entropy_period = Duration::from_millis(200)
    });
    mesh(&mut w);
    w.revoke(0, 20);
    w.revoke(2, 5);
    assert!(w.run_until(Duration::from_secs(10), World::converged));
    w.run_for(Duration::from_secs(2));
    w.sent.clear();
    w.run_for(Duration::from_secs(10));
    let rounds: Vec<_> = w.sent.iter().collect();
    // 3 nodes × 2 peers × one round per 200 ms on average, for 10 s.
    assert!(rounds.len() >= 150, "{} messages", rounds.len());
    for s in rounds {
        assert!(
            matches!(s.msg, Message::Digest { .. }),
            "in sync, {} sent a {}",
            s.from,
            s.msg.kind()
        );
        // Digest, clock sample and a heartbeat: no list that grows.
        assert!(s.bytes <= 90, "a digest of {} bytes", s.bytes);
    }
}

#[test]
fn a_connection_between_nodes_in_sync_opens_with_digests_alone() {
    let mut w = World::new(3, 85, |c| c.anti_entropy_period = Duration::from_secs(60));
    mesh(&mut w);
    w.revoke(0, 30);
    w.revoke(1, 10);
    assert!(w.run_until(Duration::from_secs(10), World::converged));
    w.disconnect(0, 1);
    w.run_for(Duration::from_millis(200));
    w.sent.clear();
    w.connect(0, 1);
    w.run_for(Duration::from_secs(1));
    let kinds: Vec<&str> = w
        .sent
        .iter()
        .filter(|s| !matches!(s.msg, Message::Hello(_)))
        .map(|s| s.msg.kind())
        .collect();
    // One digest from each side, each echoing the other's `Hello`: no
    // frontier, since they agree, and no second digest for the clock.
    assert_eq!(kinds, ["Digest", "Digest"]);
    for (node, other) in [(0, 1), (1, 0)] {
        let peers = w.nodes[node].engine.clock_check().peers;
        assert_eq!(
            peers, 2,
            "node {node} measured its clock against {other} again"
        );
    }
}

#[test]
fn a_connection_to_a_node_that_lacks_records_streams_them_at_once() {
    let mut w = World::new(2, 86, |c| c.anti_entropy_period = Duration::from_secs(60));
    let made = w.revoke(0, 200).len();
    w.connect(0, 1);
    // Hello, digests, frontiers, then batches: a few round trips of 10 ms,
    // not a round period of a minute.
    w.run_for(Duration::from_millis(300));
    assert_eq!(w.nodes[1].store.len(), made);
}

#[test]
fn a_record_missed_by_push_is_found_by_a_digest_round() {
    let mut w = World::new(2, 82, |c| {
        c.anti_entropy_period = Duration::from_millis(300);
        c.push_grace = Duration::from_millis(100);
    });
    // Every push and its copies from 0 to 1 are lost.
    w.drop = Some(Box::new(|from, _, msg| {
        from == 0 && matches!(msg, Message::Push { .. })
    }));
    w.connect(0, 1);
    w.run_for(Duration::from_secs(1));
    w.sent.clear();
    let id = w.revoke(0, 1)[0].id;
    assert!(w.run_until(Duration::from_secs(5), World::converged));
    assert!(w.nodes[1].store.frontier().contains(id));
    assert_eq!(w.records_sent(0, 1, "Records"), vec![id]);
    // Found by a digest that differed, answered by both frontiers.
    let kinds: Vec<(usize, &str)> = w
        .sent
        .iter()
        .filter(|s| !matches!(s.msg, Message::Push { .. }))
        .map(|s| (s.from, s.msg.kind()))
        .collect();
    let repair = kinds.iter().position(|k| k.1 == "Records");
    let before = &kinds[..repair.expect("a repair batch")];
    assert_eq!(before.first().map(|k| k.1), Some("Digest"), "{kinds:?}");
    for node in [0, 1] {
        assert!(before.contains(&(node, "Frontier")), "{kinds:?}");
    }
}

#[test]
fn rounds_per_period_stay_bounded_with_many_peers() {
    let period = Duration::from_millis(500);
    let mut w = World::new(17, 83, |c| {
        c.anti_entropy_period = period;
        c.anti_entropy_peers = 4;
    });
    mesh(&mut w);
    w.run_for(Duration::from_secs(20));
    w.sent.clear();
    w.run_for(Duration::from_secs(60));
    let by_node0 = w
        .sent
        .iter()
        .filter(|s| {
            s.from == 0 && matches!(s.msg, Message::Digest { .. } | Message::Frontier { .. })
        })
        .count();
    // 4 rounds per 500 ms over 60 s is 480; one per peer per period, 1,920.
    assert!(
        (380..=600).contains(&by_node0),
        "node 0 held {by_node0} rounds in 60 s"
    );
    assert_eq!(
        w.nodes[0].engine.round_period(),
        period * 16 / 4,
        "16 peers, 4 rounds per period"
    );
}

#[test]
fn a_change_without_its_body_is_not_taken_for_a_whole_report() {
    let me = NodeId::new(1);
    let of = NodeId::new(2);
    let origin = NodeId::new(3);
    let mut reports = Reports::default();
    let mut link = ReportLink::default();
    let through = vec![(origin, 3)];
    let report = |at: u64, name: &str| Report {
        node: of,
        at,
        state: Some(ReportState {
            name: name.into(),
            region: String::new(),
            through: through.clone(),
            partial: false,
        }),
        digest: through_digest(through.iter().map(|(o, s)| (o, s))),
    };
    // The whole body (with the name) was lost; a change came, whose seqs
    // happen to make up the whole list.
    reports.receive(me, Duration::ZERO, &mut link, vec![report(10, "")]);
    assert!(reports.get(of).is_none(), "a nameless copy was taken");
    assert!(link.has_wrong());
    reports.receive(me, Duration::ZERO, &mut link, vec![report(20, "n2")]);
    assert_eq!(reports.get(of).map(|r| r.name.as_str()), Some("n2"));
    assert!(!link.has_wrong());
}
