//! Data a node covers but no longer holds: found through the holdings in
//! each frontier and streamed back, unless it has expired.

use std::time::Duration;

use super::harness::{World, T0};

/// A node that lost the data of records it still covers (lag 0, digest
/// different) gets them back from a peer that holds them.
#[test]
fn lost_data_under_covered_ids_comes_back() {
    let mut w = World::new(2, 11, |_| {});
    w.connect(0, 1);
    let records = w.revoke(0, 40);
    assert!(w.run_until(Duration::from_secs(5), World::converged));
    for r in &records[10..15] {
        w.nodes[1].store.lose(r.id);
    }
    assert!(!w.converged());
    assert_eq!(
        w.nodes[1]
            .engine
            .peer_stats(w.key(1, 0).unwrap())
            .unwrap()
            .lag,
        Some(0)
    );
    assert!(w.run_until(Duration::from_secs(60), World::converged));
    for r in &records {
        assert_eq!(w.nodes[1].store.get(r.id), Some(r));
    }
    assert_eq!(w.nodes[1].engine.stats().restored, 5);
    assert!(w.sent.iter().any(|s| s.msg.kind() == "Held"));
}

/// What one node rightly collected after expiry while another still holds
/// it (its collector has not run yet) does not travel back.
#[test]
fn expired_data_is_not_restored() {
    let mut w = World::new(2, 12, |_| {});
    w.connect(0, 1);
    let past = T0.as_secs() - 2 * 3600;
    let old = w.revoke_with(0, 10, |r| r.expires_at = past);
    let live = w.revoke(0, 10);
    assert!(w.run_until(Duration::from_secs(5), World::converged));
    w.nodes[1].store.prune_expired(T0.as_secs(), 3600);
    let before = w.sent.len();
    w.run_for(Duration::from_secs(60));
    assert!(w.sent[before..].iter().any(|s| s.msg.kind() == "Held"));
    w.sent.drain(..before);
    assert!(old.iter().all(|r| w.nodes[1].store.get(r.id).is_none()));
    assert!(live.iter().all(|r| w.nodes[1].store.get(r.id) == Some(r)));
    let old_sent = w
        .records_sent(0, 1, "Records")
        .into_iter()
        .filter(|id| old.iter().any(|r| r.id == *id))
        .count();
    assert_eq!(old_sent, 0);
    assert_eq!(w.nodes[1].engine.stats().restored, 0);
}
