//! Many seeded runs with lost messages, cut connections, slow and failing
//! disks and failing reads: once the faults stop, every run converges.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::World;

const NODES: usize = 4;

fn chaos_run(seed: u64) {
    let mut w = World::new(NODES, seed, |c| {
        c.ack_timeout = Duration::from_secs(3);
        c.max_batch_records = 16;
        c.window = 2;
    });
    let mut dice = StdRng::seed_from_u64(seed ^ 0x5eed);
    let loss = dice.gen_range(0.0..0.3);
    w.drop = Some(Box::new({
        let mut dice = StdRng::seed_from_u64(seed);
        move |_, _, _| dice.gen_bool(loss)
    }));
    for _ in 0..150 {
        match dice.gen_range(0..10) {
            0..=3 => {
                let i = dice.gen_range(0..NODES);
                let n = dice.gen_range(1..20);
                w.revoke(i, n);
            }
            4 => {
                let (a, b) = (dice.gen_range(0..NODES), dice.gen_range(0..NODES));
                if a != b {
                    w.disconnect(a, b);
                }
            }
            5 => {
                let i = dice.gen_range(0..NODES);
                w.nodes[i].auto_persist = !w.nodes[i].auto_persist;
                w.flush(i);
            }
            6 => w.fail_held(dice.gen_range(0..NODES)),
            7 => {
                let i = dice.gen_range(0..NODES);
                w.nodes[i].store.failing_reads.set(dice.gen_range(1..4));
            }
            _ => {}
        }
        // The transport redials whatever is down.
        for a in 0..NODES {
            for b in a + 1..NODES {
                if w.key(a, b).is_none() && dice.gen_bool(0.5) {
                    w.connect(a, b);
                }
            }
        }
        w.run_for(Duration::from_millis(dice.gen_range(10..400)));
    }

    // Faults stop.
    w.drop = None;
    for i in 0..NODES {
        w.nodes[i].auto_persist = true;
        w.nodes[i].store.failing_reads.set(0);
        w.flush(i);
    }
    for a in 0..NODES {
        for b in a + 1..NODES {
            if w.key(a, b).is_none() {
                w.connect(a, b);
            }
        }
    }
    let converged = w.run_until(Duration::from_secs(30), World::converged);
    assert!(converged, "seed {seed} did not converge");
    let revoked: usize = w.nodes.iter().map(|n| n.store.len()).max().unwrap_or(0);
    assert!(w.nodes.iter().all(|n| n.store.len() == revoked));
    for (i, n) in w.nodes.iter().enumerate() {
        assert_eq!(
            n.engine.frontier(),
            n.store.frontier(),
            "seed {seed} node {i}"
        );
    }
}

#[test]
fn every_seeded_run_converges_once_faults_stop() {
    for seed in 0..40 {
        chaos_run(seed);
    }
}
