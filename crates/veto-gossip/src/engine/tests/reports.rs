//! Who holds what: every node learns every other's durable holdings,
//! through peers when not connected, promptly after records land, and with
//! heartbeats when idle.

use std::time::Duration;

use super::harness::World;
use crate::proto::Message;

/// Whether node `at` knows that node `of` holds `id`.
fn knows_held(w: &World, at: usize, of: usize, id: veto_core::RecordId) -> bool {
    w.nodes[at]
        .engine
        .reports()
        .get(w.node_id(of))
        .is_some_and(|r| r.holds(id).is_some())
}

#[test]
fn a_node_learns_what_a_node_it_is_not_connected_to_holds() {
    // A line: 0 - 1 - 2. Nodes 0 and 2 never talk.
    let mut w = World::new(3, 71, |c| {
        c.anti_entropy_period = Duration::from_millis(200)
    });
    w.connect(0, 1);
    w.connect(1, 2);
    w.run_for(Duration::from_secs(1));
    let records = w.revoke(0, 3);
    assert!(w.run_until(Duration::from_secs(20), World::converged));
    let last = records.last().map(|r| r.id).expect("three records");
    assert!(w.run_until(Duration::from_secs(20), |w| knows_held(w, 0, 2, last)));
    let report = w.nodes[0].engine.reports().get(w.node_id(2)).cloned();
    let report = report.expect("node 2's report at node 0");
    assert_eq!(report.name, "n2");
    assert_eq!(report.region, "r2");
    assert_eq!(report.through(w.node_id(0)), 3);
}

#[test]
fn a_push_that_lands_is_reported_back_within_a_round_trip() {
    // Anti-entropy far away: only the prompt report can answer in time.
    let mut w = World::new(2, 72, |c| c.anti_entropy_period = Duration::from_secs(60));
    w.connect(0, 1);
    w.run_for(Duration::from_millis(100));
    let id = w.revoke(0, 1)[0].id;
    let start = w.now;
    assert!(w.run_until(Duration::from_secs(1), |w| knows_held(w, 0, 1, id)));
    // One way 10 ms, back 10 ms.
    assert!(
        w.now - start <= Duration::from_millis(25),
        "{:?}",
        w.now - start
    );
}

#[test]
fn idle_nodes_heartbeat_and_a_record_not_yet_durable_is_not_claimed() {
    let mut w = World::new(2, 73, |c| {
        c.anti_entropy_period = Duration::from_millis(100)
    });
    w.connect(0, 1);
    w.run_for(Duration::from_millis(500));
    let heard = |w: &World| {
        let report = w.nodes[0].engine.reports().get(w.node_id(1)).cloned();
        report.map(|r| r.heard_at).expect("node 1 reported")
    };
    let before = heard(&w);
    w.run_for(Duration::from_secs(1));
    assert!(heard(&w) > before, "no heartbeat in a second of idling");

    // Node 1 takes the record in but its disk has not said durable.
    w.nodes[1].auto_persist = false;
    let id = w.revoke(0, 1)[0].id;
    w.run_for(Duration::from_secs(1));
    assert!(!knows_held(&w, 0, 1, id));
    w.flush(1);
    assert!(w.run_until(Duration::from_secs(1), |w| knows_held(w, 0, 1, id)));
}

#[test]
fn report_before_durable_claims_what_is_not_on_disk() {
    let mut w = World::new(2, 74, |c| {
        c.anti_entropy_period = Duration::from_millis(100);
        c.report_before_durable = true;
    });
    w.connect(0, 1);
    w.run_for(Duration::from_millis(500));
    w.nodes[1].auto_persist = false;
    let id = w.revoke(0, 1)[0].id;
    w.run_for(Duration::from_secs(1));
    // The bug: node 0 is told node 1 holds what node 1's disk does not.
    assert!(knows_held(&w, 0, 1, id));
    assert!(!w.nodes[1].store.frontier().contains(id));
}

#[test]
fn a_prompt_report_to_an_origin_carries_its_entry_and_the_rest_follows() {
    use crate::engine::reports::{ReportLink, Reports};
    use crate::engine::Now;
    use veto_core::{Frontier, NodeId};

    let (me, origin, other) = (NodeId::new(1), NodeId::new(2), NodeId::new(3));
    let mut mine = Reports::default();
    let mut theirs = Reports::default();
    let (mut out, mut inn) = (ReportLink::default(), ReportLink::default());
    let mut durable = Frontier::new();
    durable.insert_range(origin, 1..=4);
    durable.insert_range(other, 1..=9);
    let now = Now::new(Duration::from_secs(1), Duration::from_secs(1_000));
    mine.own(me, "n1", "r1", now, &durable);

    // The origin is sent its own entry, marked partial.
    let prompt = mine.outgoing(&mut out, Some(origin), [me], Some(origin));
    let state = prompt[0].state.as_ref().expect("a body");
    assert_eq!(state.through, vec![(origin, 4)]);
    assert!(state.partial);
    theirs.receive(origin, now.mono, &mut inn, prompt.clone());
    let held = theirs.get(me).expect("taken in");
    assert_eq!(held.through(origin), 4);
    // Nothing is claimed of the origins it left out.
    assert_eq!(held.through(other), 0);
    assert!(!held.coverage.contains_key(&other));

    // The next message brings the rest under the same time.
    let rest = mine.outgoing(&mut out, Some(origin), [me], None);
    let state = rest[0].state.as_ref().expect("the rest");
    assert_eq!(rest[0].at, prompt[0].at);
    assert!(!state.partial);
    assert!(state.through.contains(&(other, 9)));
    assert!(!state.through.iter().any(|(o, _)| *o == origin));
    theirs.receive(origin, now.mono, &mut inn, rest);
    let held = theirs.get(me).expect("taken in");
    assert_eq!((held.through(origin), held.through(other)), (4, 9));
    assert!(!inn.has_wrong());
    // And then nothing more until the report changes.
    assert!(mine.outgoing(&mut out, Some(origin), [me], None).is_empty());
}

/// Past the full mesh, a node that takes in a record of an origin it has
/// no connection to sends its report to a few peers that relay it (at most
/// `anti_entropy_peers`, one connected to the origin among them), not to
/// every peer; and the origin still learns that every node holds it.
#[test]
fn past_the_full_mesh_a_report_for_an_origin_out_of_reach_goes_to_a_few_relayers() {
    // Nodes 1..=11 in a full mesh; the origin, node 0, connected to node 1
    // only.
    let mut w = World::new(12, 74, |c| {
        c.anti_entropy_period = Duration::from_millis(200);
        c.anti_entropy_peers = 3;
    });
    for a in 1..12 {
        for b in a + 1..12 {
            w.connect(a, b);
        }
    }
    w.connect(0, 1);
    // Lists of connections go out after a round period, and relaying waits
    // for two.
    w.run_for(Duration::from_secs(3));
    w.sent.clear();
    let id = w.revoke(0, 1)[0].id;
    let everywhere = |w: &World| (1..12).all(|n| knows_held(w, 0, n, id));
    assert!(w.run_until(Duration::from_secs(60), everywhere));
    for n in 2..12 {
        let to: Vec<usize> = w
            .sent
            .iter()
            .filter(|s| s.from == n && matches!(s.msg, Message::Reports { .. }))
            .map(|s| s.to)
            .collect();
        assert!(!to.is_empty(), "node {n} sent no prompt report");
        assert!(to.len() <= 3, "node {n} sent its report to {to:?}");
        assert!(to.contains(&1), "node {n} passed over node 1: {to:?}");
    }
}
