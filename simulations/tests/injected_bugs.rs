//! The checker can fail: with a deliberate bug switched on, runs report a
//! violation that names the seed, the node and the record.

use veto_sim::{run_seed, Bug, RunOptions, Scenario, Size};

fn with_bug(bug: Bug) -> RunOptions {
    RunOptions {
        size: Size::Quick,
        bug: Some(bug),
        ..RunOptions::default()
    }
}

#[test]
fn a_store_that_drops_one_origin_is_caught_and_named() {
    for seed in [3, 11, 2024] {
        let healthy = run_seed(Scenario::Healthy5Regions, seed, &with_bug(Bug::DropOrigin));
        assert!(
            !healthy.passed,
            "seed {seed}: the dropped records went unnoticed"
        );
        // The receipt check may see it first: the store covers less than
        // the node reports.
        let v = healthy
            .violations
            .iter()
            .find(|v| v.invariant == "durable-write-lost")
            .unwrap_or_else(|| panic!("seed {seed}: no durable-write-lost\n{healthy}"));
        assert_eq!(v.seed, seed);
        // The first node's store drops the second node's records.
        assert_eq!(v.node.as_deref(), Some("us-east-1/1"));
        assert!(v.record.is_some());
        assert!(v.to_string().starts_with(&format!("seed {seed} ")), "{v}");
        // The loss also shows at the end: the cluster never agrees.
        assert!(healthy.convergence.after_heal_ms.is_none());
        assert!(healthy
            .violations
            .iter()
            .any(|v| v.invariant == "no-convergence" || v.invariant == "acked-record-missing"));
        let report = healthy.to_string();
        assert!(report.contains("FAIL") && report.contains(&format!("seed {seed}")));
    }
}

#[test]
fn the_same_seeds_pass_without_the_bug() {
    let clean = RunOptions {
        size: Size::Quick,
        ..RunOptions::default()
    };
    for seed in [3, 11, 2024] {
        let r = run_seed(Scenario::Healthy5Regions, seed, &clean);
        assert!(r.passed, "{r}");
    }
}

#[test]
fn a_crash_that_loses_acknowledged_writes_is_caught() {
    let mut caught = 0;
    for seed in 0..8 {
        let r = run_seed(Scenario::CrashRestart, seed, &with_bug(Bug::LoseUnsynced));
        if !r.passed {
            caught += 1;
            assert!(r.violations.iter().all(|v| v.seed == seed));
            assert!(
                r.violations.iter().any(|v| matches!(
                    v.invariant,
                    "durable-record-lost"
                        | "seq-reused"
                        | "acked-record-missing"
                        | "altered-record"
                )),
                "{r}"
            );
        }
    }
    // A crash loses writes only if some were made in its last 200 ms.
    assert!(
        caught >= 4,
        "only {caught} of 8 runs caught the lost writes"
    );
}
