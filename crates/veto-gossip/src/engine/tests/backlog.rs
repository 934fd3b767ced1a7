//! Backlog streaming: bounded batches, the window, and recovery from lost
//! batches and failed reads.

use std::collections::BTreeSet;
use std::time::Duration;

use super::harness::World;
use crate::engine::{EngineEvent, Lane};
use crate::proto::Message;

fn batches(w: &World, from: usize, to: usize) -> Vec<(usize, usize)> {
    w.sent
        .iter()
        .filter(|s| s.from == from && s.to == to)
        .filter_map(|s| match &s.msg {
            Message::Records { records, .. } => {
                assert_eq!(s.lane, Lane::Bulk);
                Some((records.len(), s.bytes))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_node_streams_a_large_backlog_within_the_window() {
    let mut w = World::new(2, 21, |c| {
        c.window = 4;
        c.max_batch_records = 256;
    });
    // Slow links, so that the window and not the round trip bounds the flow.
    w.bulk_latency = Duration::from_millis(80);
    w.latency = Duration::from_millis(80);
    let records = w.revoke(0, 20_000);
    w.connect(0, 1);
    assert!(w.run_until(Duration::from_secs(120), World::converged));

    assert_eq!(w.nodes[1].store.len(), 20_000);
    let sent = batches(&w, 0, 1);
    assert!(sent.iter().all(|(n, _)| *n <= 256));
    assert_eq!(sent.iter().map(|(n, _)| n).sum::<usize>(), 20_000);
    assert_eq!(sent.len(), 20_000usize.div_ceil(256));
    // The window was used, and never exceeded.
    assert_eq!(w.max_unacked, 4);
    assert!(w.nodes[0].store.max_read.get() <= 256);
    // Every record was asked to be persisted exactly once.
    let persisted: BTreeSet<_> = w.nodes[1].persisted.iter().collect();
    assert_eq!(persisted.len(), w.nodes[1].persisted.len());
    assert_eq!(persisted.len(), records.len());
    assert_eq!(w.nodes[1].engine.stats().duplicates, 0);
}

#[test]
fn batches_stay_within_the_byte_budget() {
    let mut w = World::new(2, 22, |c| {
        c.max_batch_bytes = 4096;
        c.max_batch_records = 4096;
    });
    w.revoke_with(0, 2_000, |r| r.reason = "r".repeat(100));
    w.connect(0, 1);
    assert!(w.run_until(Duration::from_secs(60), World::converged));
    let sent = batches(&w, 0, 1);
    assert!(sent.len() > 2_000 * 150 / 4096);
    for (n, bytes) in sent {
        assert!(bytes <= 4096, "{n} records in {bytes} bytes");
    }
}

#[test]
fn a_dropped_batch_times_out_and_is_sent_again() {
    let mut w = World::new(2, 23, |c| {
        c.window = 2;
        c.max_batch_records = 100;
        c.ack_timeout = Duration::from_secs(3);
    });
    w.revoke(0, 1_000);
    let mut dropped = false;
    w.drop = Some(Box::new(move |_, _, msg| {
        let drop_it = !dropped && matches!(msg, Message::Records { batch_id: 3, .. });
        dropped |= drop_it;
        drop_it
    }));
    w.connect(0, 1);
    assert!(w.run_until(Duration::from_secs(60), World::converged));
    let timed_out = w.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, EngineEvent::BatchTimedOut { batch_id: 3, .. }));
    assert!(timed_out);
    // Only the lost batch's records travelled twice, if any did.
    let resent = batches(&w, 0, 1).iter().map(|(n, _)| n).sum::<usize>() - 1_000;
    assert!(resent <= 100, "{resent} records resent");
}

#[test]
fn a_failed_read_is_retried_and_clears_nothing() {
    let mut w = World::new(2, 24, |c| c.retry_delay = Duration::from_millis(500));
    w.revoke(0, 300);
    w.nodes[0].store.failing_reads.set(3);
    w.connect(0, 1);
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.nodes[1].store.len(), 0);
    assert!(w.run_until(Duration::from_secs(10), World::converged));
    assert_eq!(w.nodes[1].store.len(), 300);
    assert_eq!(w.nodes[1].engine.stats().cleared, 0);
    assert_eq!(w.nodes[0].store.failing_reads.get(), 0);
}

#[test]
fn pushes_overtake_a_backlog_in_progress() {
    let mut w = World::new(2, 25, |c| {
        c.window = 1;
        c.max_batch_records = 64;
    });
    w.bulk_latency = Duration::from_millis(200);
    w.revoke(0, 5_000);
    w.connect(0, 1);
    w.run_for(Duration::from_secs(1));
    assert!(w.nodes[1].store.len() < 5_000);
    let fresh = w.revoke(0, 1);
    w.run_for(w.latency);
    assert_eq!(w.nodes[1].store.get(fresh[0].id), Some(&fresh[0]));
    assert!(w.nodes[1].store.len() < 5_000);
    assert!(w.run_until(Duration::from_secs(60), World::converged));
}

#[test]
fn batches_are_acked_only_once_durable() {
    let mut w = World::new(2, 26, |c| {
        c.window = 2;
        c.max_batch_records = 50;
    });
    w.revoke(0, 500);
    w.nodes[1].auto_persist = false;
    w.connect(0, 1);
    w.run_for(Duration::from_secs(1));
    let acks = |w: &World| {
        w.sent
            .iter()
            .filter(|s| s.from == 1 && matches!(s.msg, Message::Ack { .. }))
            .count()
    };
    // Two batches arrived and wait for the disk: no ack, no third batch, and
    // nothing advertised.
    assert_eq!(batches(&w, 0, 1).len(), 2);
    assert_eq!(acks(&w), 0);
    assert_eq!(w.nodes[1].engine.stats().persisting, 100);
    assert_eq!(w.nodes[1].engine.frontier().count(), 0);
    w.flush(1);
    assert_eq!(acks(&w), 2);
    assert_eq!(w.nodes[1].engine.frontier().count(), 100);
    w.nodes[1].auto_persist = true;
    w.flush(1);
    assert!(w.run_until(Duration::from_secs(30), World::converged));
}
