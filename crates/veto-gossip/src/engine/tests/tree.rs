//! The push tree past a full mesh: a record crosses each other region once
//! and fans out inside it, and a gateway that goes silent is replaced.

use std::time::Duration;

use super::harness::World;
use crate::engine::output::Lane;
use crate::proto::Message;
use veto_core::RecordId;

/// Twelve nodes in three regions of four, all connected: eleven peers each,
/// past the full mesh of eight.
fn three_regions(seed: u64) -> World {
    let mut w = World::new(12, seed, |c| {
        c.region = format!("r{}", (c.node.get() - 1) / 4);
        c.anti_entropy_period = Duration::from_secs(5);
    });
    let n = w.nodes.len();
    for a in 0..n {
        for b in a + 1..n {
            w.connect(a, b);
        }
    }
    w.run_for(Duration::from_secs(1));
    w.sent.clear();
    w
}

fn region(node: usize) -> usize {
    node / 4
}

/// Who was sent `id` by push on the urgent lane, as (from, to).
fn pushes(w: &World, id: RecordId) -> Vec<(usize, usize)> {
    w.sent
        .iter()
        .filter(|s| s.lane == Lane::Urgent)
        .filter(
            |s| matches!(&s.msg, Message::Push { records } if records.iter().any(|r| r.id == id)),
        )
        .map(|s| (s.from, s.to))
        .collect()
}

fn holders(w: &World, id: RecordId) -> Vec<usize> {
    (0..w.nodes.len())
        .filter(|i| w.nodes[*i].store.frontier().contains(id))
        .collect()
}

#[test]
fn a_record_crosses_each_region_once_and_fans_out_inside_it() {
    let mut w = three_regions(91);
    let id = w.revoke(0, 1)[0].id;
    w.run_for(Duration::from_secs(1));
    assert_eq!(holders(&w, id), (0..12).collect::<Vec<_>>());
    let pushes = pushes(&w, id);
    let crossing: Vec<_> = pushes
        .iter()
        .filter(|(a, b)| region(*a) != region(*b))
        .collect();
    // One gateway in each of the two other regions, pushed to by the origin.
    assert_eq!(crossing.len(), 2, "{pushes:?}");
    assert!(crossing.iter().all(|(from, _)| *from == 0), "{pushes:?}");
    // Eleven nodes, each sent it once: the origin's region and gateways by
    // the origin, the rest by their gateway.
    assert_eq!(pushes.len(), 11, "{pushes:?}");
    for (_, gateway) in crossing {
        assert!(w.nodes[*gateway].engine.stats().relayed >= 1);
    }
    assert!(w.sent.iter().all(|s| s.msg.kind() != "Records"));
}

#[test]
fn a_silent_gateway_is_replaced_within_the_relay_timeout() {
    let mut w = three_regions(92);
    let first = w.revoke(0, 1)[0].id;
    w.run_for(Duration::from_secs(1));
    let gateway = pushes(&w, first)
        .into_iter()
        .find(|(a, b)| *a == 0 && region(*b) == 1)
        .map(|(_, b)| b)
        .expect("a gateway in region 1");
    // The gateway goes silent: its connections stay up, but nothing reaches
    // it any more.
    w.drop = Some(Box::new(move |_, to, _| to == gateway));
    w.sent.clear();
    let second = w.revoke(0, 1)[0].id;
    w.run_for(Duration::from_millis(900));
    let expected: Vec<usize> = (0..12).filter(|i| *i != gateway).collect();
    assert_eq!(
        holders(&w, second),
        expected,
        "by the relay timeout and a round trip"
    );
    assert!(w.nodes[0].engine.stats().regrafted >= 1);
    assert!(w.sent.iter().all(|s| s.msg.kind() != "Records"));
    // Later records go through another gateway at once.
    w.sent.clear();
    let third = w.revoke(0, 1)[0].id;
    w.run_for(Duration::from_millis(200));
    assert_eq!(holders(&w, third), expected);
    // (Its region's new gateway still pushes to it, as to any peer there.)
    assert!(!pushes(&w, third).contains(&(0, gateway)));
}
