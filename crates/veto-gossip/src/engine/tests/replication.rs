//! Replication scenarios between two and three engines.

use std::time::Duration;

use super::harness::{World, T0};
use crate::engine::{EngineEvent, Now, Via};
use crate::proto::Message;

fn full_mesh(n: usize, seed: u64) -> World {
    let mut w = World::new(n, seed, |_| {});
    for a in 0..n {
        for b in a + 1..n {
            w.connect(a, b);
        }
    }
    w.run_for(Duration::from_millis(100));
    w
}

fn no_closes(w: &World) {
    for (i, n) in w.nodes.iter().enumerate() {
        assert!(n.closed.is_empty(), "node {i} closed: {:?}", n.closed);
    }
}

#[test]
fn a_push_reaches_every_peer_after_one_hop() {
    let mut w = full_mesh(3, 1);
    let records = w.revoke(0, 3);
    w.run_for(w.latency);
    for i in 1..3 {
        for r in &records {
            assert_eq!(w.nodes[i].store.get(r.id), Some(r));
        }
        let latencies: Vec<Duration> = w.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::PropagationLatency {
                    latency,
                    via: Via::Push,
                    ..
                } => Some(*latency),
                _ => None,
            })
            .collect();
        assert_eq!(latencies.len(), 3);
        for l in latencies {
            // One hop of 10 ms, to within the stamp's sub-millisecond precision.
            assert!(l.abs_diff(w.latency) < Duration::from_millis(1), "{l:?}");
        }
    }
    assert!(w.records_sent(0, 1, "Records").is_empty());
    no_closes(&w);
}

#[test]
fn lost_pushes_are_repaired_by_anti_entropy() {
    let mut w = full_mesh(2, 2);
    w.drop = Some(Box::new(|from, _, msg| {
        from == 0 && matches!(msg, Message::Push { .. })
    }));
    let records = w.revoke(0, 5);
    w.run_for(Duration::from_millis(500));
    assert!(w.nodes[1].store.get(records[0].id).is_none());
    assert!(w.run_until(Duration::from_secs(10), World::converged));
    let repaired = w.records_sent(0, 1, "Records");
    assert_eq!(repaired, records.iter().map(|r| r.id).collect::<Vec<_>>());
    // Nothing was sent twice: the repair waited out the push grace period.
    assert_eq!(w.nodes[1].engine.stats().duplicates, 0);
    no_closes(&w);
}

#[test]
fn a_healed_partition_converges_and_lag_drains() {
    let mut w = full_mesh(3, 3);
    w.disconnect(0, 2);
    w.disconnect(1, 2);
    w.revoke(0, 100);
    w.revoke(1, 30);
    w.revoke(2, 50);
    w.run_for(Duration::from_secs(5));
    assert!(!w.converged());
    assert_eq!(w.nodes[0].store.len(), 130);
    assert_eq!(w.nodes[2].store.len(), 50);

    w.connect(0, 2);
    w.connect(1, 2);
    assert!(w.run_until(Duration::from_secs(10), World::converged));
    assert_eq!(w.nodes[2].store.len(), 180);
    let digest = w.nodes[0].store.digest();
    assert!(w.nodes.iter().all(|n| n.store.digest() == digest));
    // Once the next frontiers arrive, no peer lags.
    w.run_for(Duration::from_secs(4));
    for a in 0..3 {
        for b in 0..3 {
            if a != b {
                let key = w.key(a, b).unwrap();
                let stats = w.nodes[a].engine.peer_stats(key).unwrap();
                assert_eq!(stats.lag, Some(0), "{a} -> {b}");
                assert_eq!(stats.unacked_batches, 0);
            }
        }
    }
    no_closes(&w);
}

#[test]
fn received_records_are_not_relayed_but_reach_a_partial_mesh() {
    // 0 - 1 - 2 in a line: 2 learns 0's records through 1's anti-entropy.
    let mut w = World::new(3, 4, |_| {});
    w.connect(0, 1);
    w.connect(1, 2);
    w.run_for(Duration::from_millis(100));
    let records = w.revoke(0, 4);
    w.run_for(Duration::from_millis(50));
    assert!(w.records_sent(1, 2, "Push").is_empty());
    assert!(w.run_until(Duration::from_secs(10), World::converged));
    assert_eq!(
        w.records_sent(1, 2, "Records"),
        records.iter().map(|r| r.id).collect::<Vec<_>>()
    );
}

/// A record that arrives already past its expiry is stored all the same: the
/// receiver's clock alone must never make a record vanish (it may run ahead).
/// Garbage collection, which checks the clock against the cluster's, takes it.
#[test]
fn expired_records_are_stored_and_left_to_garbage_collection() {
    let mut w = World::new(2, 5, |_| {});
    let past = T0.as_secs() - 2 * 3600;
    let mut records = w.revoke(0, 6);
    records.extend(w.revoke_with(0, 4, |r| r.expires_at = past));
    w.connect(0, 1);
    w.run_for(Duration::from_secs(1));
    // And one that arrives by push.
    let pushed = w.revoke_with(0, 1, |r| r.expires_at = past);
    w.run_for(Duration::from_secs(1));

    let b = &w.nodes[1];
    assert_eq!(b.store.len(), 11);
    for r in records.iter().chain(&pushed) {
        assert!(b.store.frontier().contains(r.id));
        assert_eq!(b.store.get(r.id), Some(r));
    }
    assert_eq!(b.engine.stats().expired_on_receipt, 5);
    assert!(b.engine.frontier().contains(pushed[0].id));
}

#[test]
fn pruned_records_are_cleared_and_never_resurrected() {
    let mut w = World::new(3, 6, |_| {});
    let past = T0.as_secs() - 2 * 3600;
    let old = w.revoke_with(0, 50, |r| r.expires_at = past);
    let live = w.revoke(0, 50);
    // Node 2 still holds the old half, as if it had taken it in before it
    // expired; its garbage collection has not run yet.
    for r in &old {
        w.nodes[2].store.insert(r.clone());
    }
    w.nodes[2].engine.local_records(Now::both(w.now), &old);
    // Node 0's garbage collection prunes the old half.
    w.nodes[0].store.prune_expired(T0.as_secs(), 3600);
    assert_eq!(w.nodes[0].store.len(), 50);

    // A brand-new node learns the old half only as cleared.
    w.connect(0, 1);
    assert!(w.run_until(Duration::from_secs(5), |w| {
        w.nodes[1].store.frontier() == w.nodes[0].store.frontier()
    }));
    assert_eq!(w.nodes[1].store.len(), 50);
    assert_eq!(w.nodes[1].engine.stats().cleared, 50);
    let cleared: u64 = w
        .sent
        .iter()
        .filter(|s| s.from == 0 && s.to == 1)
        .map(|s| match &s.msg {
            Message::Records { cleared, .. } => cleared
                .iter()
                .flat_map(|(_, r)| r.iter().map(|r| r.end() - r.start() + 1))
                .sum(),
            _ => 0,
        })
        .sum();
    assert_eq!(cleared, 50);
    assert!(w.records_sent(0, 1, "Records").iter().all(|id| id.seq > 50));

    // Node 2 joins: it receives the live half, and nothing old travels in
    // any direction although node 2 still stores it.
    w.connect(1, 2);
    w.connect(0, 2);
    w.run_for(Duration::from_secs(10));
    for to in 0..3 {
        for from in 0..3 {
            for kind in ["Push", "Records"] {
                let ids = w.records_sent(from, to, kind);
                assert!(
                    ids.iter().all(|id| id.seq > 50),
                    "{from} -> {to} sent an old record"
                );
            }
        }
    }
    assert_eq!(w.nodes[1].store.len(), 50);
    assert!(live.iter().all(|r| w.nodes[2].store.get(r.id) == Some(r)));
    assert!(!w.converged());
    w.nodes[2].store.prune_expired(T0.as_secs(), 3600);
    assert!(w.converged());
    no_closes(&w);
}

#[test]
fn lanes_may_overtake_each_other() {
    // The bulk lane is far slower than the urgent one, then far faster.
    for (urgent, bulk) in [(5, 400), (400, 5)] {
        let mut w = World::new(3, 7, |_| {});
        w.latency = Duration::from_millis(urgent);
        w.bulk_latency = Duration::from_millis(bulk);
        w.revoke(0, 3000);
        w.connect(0, 1);
        w.connect(1, 2);
        w.connect(0, 2);
        w.revoke(1, 10);
        assert!(w.run_until(Duration::from_secs(20), World::converged));
        no_closes(&w);
    }
}

#[test]
fn seeded_runs_are_identical() {
    let run = |seed: u64| {
        let mut w = full_mesh(3, seed);
        w.drop = Some(Box::new({
            let mut n = 0u32;
            move |_, _, _| {
                n += 1;
                // Every seventh message is lost.
                let lost = n == 7;
                if lost {
                    n = 0;
                }
                lost
            }
        }));
        for round in 0..20 {
            w.revoke(round % 3, 5);
            w.run_for(Duration::from_millis(700));
        }
        w.drop = None;
        assert!(w.run_until(Duration::from_secs(60), World::converged));
        w.sent
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a, run(12));
}
