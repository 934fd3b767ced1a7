//! The seeds on which the receipt checks found flaws (simulations/README.md,
//! "Findings about the engine"): each failed before its fix and must pass.

use veto_sim::{run_seed, RunOptions, Scenario, Size};

fn passes(seed: u64) {
    let opts = RunOptions {
        size: Size::Quick,
        ..RunOptions::default()
    };
    let r = run_seed(Scenario::Random, seed, &opts);
    assert!(r.passed, "{r}");
}

#[test]
fn a_delta_lost_on_a_live_connection_does_not_make_a_watermark_overclaim() {
    // `watermark-overclaims` before reports carried a digest of their body.
    passes(1478);
}

#[test]
fn a_failed_local_write_leaves_no_gap_in_its_origin_log() {
    // `watermark-overclaims` while the simulator's writer kept failed seqs.
    passes(1498);
}

#[test]
fn receipts_follow_the_running_life_of_a_restarted_node() {
    // `receipt-incomplete` while the latest life went by its reports' own
    // dates (1111, 1742: a clock stepped back) or by this node's wall clock
    // (1007: this node's clock jumped).
    for seed in [1111, 1742, 1007] {
        passes(seed);
    }
}
