//! The CI sweep: 303 seeds over every scenario at quick sizes, in the debug
//! profile, on both cores. The 10,000-seed sweep at full size is the
//! documented command in simulations/README.md.

use veto_sim::{run_seed, RunOptions, RunReport, Scenario, Size};

#[test]
fn three_hundred_seeds_over_every_scenario_keep_every_invariant() {
    let opts = RunOptions {
        size: Size::Quick,
        ..RunOptions::default()
    };
    // A 100-node world costs seconds in debug builds: three seeds of it, and
    // 20 of each other scenario.
    let mut jobs: Vec<(Scenario, u64)> = Vec::new();
    for scenario in Scenario::ALL {
        let seeds = if scenario == Scenario::LargeCluster100Nodes {
            3
        } else {
            20
        };
        jobs.extend((0..seeds).map(|s| (scenario, 1_000 + s)));
    }
    assert!(jobs.len() >= 300);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<RunReport> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((scenario, seed)) = jobs.get(i) else {
                            return out;
                        };
                        out.push(run_seed(*scenario, *seed, &opts));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), jobs.len());
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            format!(
                "veto-sim --quick --scenario {} --seed {}: {}",
                r.scenario,
                r.seed,
                r.violations
                    .first()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} runs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    // Every run converged, and every scenario did something.
    assert!(results
        .iter()
        .all(|r| r.convergence.after_heal_ms.is_some()));
    assert!(results.iter().all(|r| r.acknowledged > 0));
}

/// Two nodes whose clocks disagree never collect, and one of them lacks a
/// record the other rightly did not send back (it had expired). Agreement
/// then comes from time alone, once that record drops out of the compared
/// digests: the checker must see it without waiting for data to move. Seed
/// 2993 of the 10,000-seed random sweep failed `no-convergence` this way.
#[test]
fn agreement_reached_by_expiry_alone_is_seen() {
    let r = run_seed(Scenario::Random, 2993, &RunOptions::default());
    assert!(r.passed, "{r}");
    assert!(r.convergence.after_heal_ms.is_some(), "{r}");
}
