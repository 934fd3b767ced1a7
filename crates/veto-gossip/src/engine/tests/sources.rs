//! Each record reaches a node about once: not relayed while its origin's push
//! is on its way, and a backlog taken from one peer rather than from all.

use std::time::Duration;

use super::harness::World;
use crate::proto::Message;

fn full_mesh(w: &mut World, nodes: &[usize]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            w.connect(*a, *b);
        }
    }
}

/// Records that reached `to` in backlog batches, from every peer.
fn streamed_to(w: &World, to: usize) -> usize {
    (0..w.nodes.len())
        .map(|from| w.records_sent(from, to, "Records").len())
        .sum()
}

#[test]
fn a_record_pushed_to_two_nodes_is_not_also_streamed_between_them() {
    let mut w = World::new(3, 61, |c| {
        c.anti_entropy_period = Duration::from_millis(40);
    });
    // Node 2's pushes take 300 ms to reach node 0, and 10 ms to reach node 1:
    // node 0's frontiers reach node 1 many times while node 1 already holds
    // records that node 0 lacks.
    w.slow.insert((2, 0), Duration::from_millis(300));
    full_mesh(&mut w, &[0, 1, 2]);
    w.run_for(Duration::from_millis(500));
    let records = w.revoke(2, 20);
    assert!(w.run_until(Duration::from_secs(10), World::converged));

    assert_eq!(w.records_sent(2, 0, "Push").len(), records.len());
    assert_eq!(w.records_sent(1, 0, "Records"), Vec::new());
    assert_eq!(w.records_sent(2, 0, "Records"), Vec::new());
    assert_eq!(w.nodes[0].engine.stats().duplicates, 0);
}

#[test]
fn a_node_back_from_a_partition_gets_each_missed_record_about_once() {
    let mut w = World::new(4, 62, |_| {});
    full_mesh(&mut w, &[0, 1, 2, 3]);
    w.run_for(Duration::from_millis(500));
    for peer in 0..3 {
        w.disconnect(3, peer);
    }
    let missed: usize = (0..3).map(|i| w.revoke(i, 100).len()).sum();
    w.run_for(Duration::from_secs(3));
    for peer in 0..3 {
        w.connect(3, peer);
    }
    assert!(w.run_until(Duration::from_secs(30), World::converged));

    assert_eq!(w.nodes[3].store.len(), missed);
    // Every peer covers all 300; each used to stream them all.
    let streamed = streamed_to(&w, 3);
    assert!(
        streamed >= missed && streamed <= missed * 11 / 10,
        "{streamed}"
    );
    assert!(w.nodes[3].engine.stats().duplicates <= missed as u64 / 10);
}

#[test]
fn a_new_node_takes_a_backlog_from_one_peer() {
    let mut w = World::new(4, 63, |c| c.max_batch_records = 64);
    full_mesh(&mut w, &[0, 1, 2]);
    let made: usize = (0..3).map(|i| w.revoke(i, 500).len()).sum();
    w.run_for(Duration::from_secs(3));
    for peer in 0..3 {
        w.connect(3, peer);
    }
    assert!(w.run_until(Duration::from_secs(60), World::converged));

    assert_eq!(w.nodes[3].store.len(), made);
    let streamed = streamed_to(&w, 3);
    assert!(streamed >= made && streamed <= made * 11 / 10, "{streamed}");
    assert!(w.nodes[3].engine.stats().duplicates <= made as u64 / 10);
}

#[test]
fn a_source_that_stops_sending_is_replaced() {
    let mut w = World::new(3, 64, |c| {
        c.anti_entropy_period = Duration::from_millis(200);
        c.max_batch_records = 16;
    });
    w.connect(0, 1);
    let made = w.revoke(0, 200).len() + w.revoke(1, 200).len();
    w.run_for(Duration::from_secs(3));
    // Node 0 keeps talking to node 2, but none of its batches arrive (as if
    // its reads failed): node 2 must get node 0's records from node 1.
    w.drop = Some(Box::new(|from, to, msg| {
        from == 0 && to == 2 && matches!(msg, Message::Records { .. })
    }));
    w.connect(2, 0);
    w.connect(2, 1);
    assert!(w.run_until(Duration::from_secs(60), World::converged));
    assert_eq!(w.nodes[2].store.len(), made);
}
