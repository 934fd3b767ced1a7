//! A seed replays its run exactly, whatever thread runs it.

use veto_sim::{params_for, run_seed, sweep, RunOptions, RunReport, Scenario, Selection, Size};

fn quick() -> RunOptions {
    RunOptions {
        size: Size::Quick,
        ..RunOptions::default()
    }
}

/// Everything a run reports except how long the host took.
fn fingerprint(r: &RunReport) -> String {
    let mut r = r.clone();
    r.wall_ms = 0.0;
    serde_json::to_string(&r).unwrap()
}

#[test]
fn a_seed_replays_the_same_trace() {
    for scenario in [
        Scenario::Random,
        Scenario::CrashRestart,
        Scenario::ClockSkew,
        Scenario::FlappingLinks,
        Scenario::AsymmetricPartition,
        Scenario::CorruptTail,
        Scenario::DiskFailure,
    ] {
        let a = run_seed(scenario, 42, &quick());
        let b = run_seed(scenario, 42, &quick());
        assert_eq!(a.trace_hash, b.trace_hash, "{}", scenario.name());
        assert_eq!(fingerprint(&a), fingerprint(&b), "{}", scenario.name());
        assert!(a.events > 1_000);
    }
}

#[test]
fn different_seeds_make_different_runs() {
    let a = run_seed(Scenario::Random, 1, &quick());
    let b = run_seed(Scenario::Random, 2, &quick());
    assert_ne!(a.trace_hash, b.trace_hash);
    assert_ne!(
        a.params, b.params,
        "the world's parameters come from the seed too"
    );
    let c = run_seed(Scenario::Healthy5Regions, 1, &quick());
    let d = run_seed(Scenario::Healthy5Regions, 2, &quick());
    assert_ne!(c.trace_hash, d.trace_hash);
}

#[test]
fn parameters_are_a_function_of_the_seed() {
    for seed in 0..20 {
        let a = params_for(Scenario::Random, seed, &quick());
        let b = params_for(Scenario::Random, seed, &quick());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}

#[test]
fn a_sweep_does_not_depend_on_thread_scheduling() {
    let collect = |workers| {
        let mut seen = Vec::new();
        let report = sweep(Selection::All, 100, 12, &quick(), workers, |r| {
            seen.push((r.seed, r.trace_hash.clone()));
        });
        (seen, serde_json::to_value(&report.scenarios).unwrap())
    };
    let (one, one_summary) = collect(1);
    let (two, two_summary) = collect(2);
    assert_eq!(one, two);
    assert_eq!(
        one.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (100..112).collect::<Vec<_>>()
    );
    assert_eq!(one_summary, two_summary);
}
