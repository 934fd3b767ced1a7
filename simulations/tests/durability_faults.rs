//! The durability faults of docs/durability.md: each one, run with the fix
//! that guards against it switched off, is caught by the invariant that
//! checks it, naming the seed; the same seeds pass with the fix on.

use veto_sim::{run_seed, Bug, RunOptions, RunReport, Scenario, Size};

const SEEDS: [u64; 3] = [1, 2, 3];

fn quick(bug: Option<Bug>) -> RunOptions {
    RunOptions {
        size: Size::Quick,
        bug,
        ..RunOptions::default()
    }
}

/// Runs `scenario` with `bug` on every seed; each run must fail, naming its
/// seed, with one of `invariants` among its violations.
fn caught(scenario: Scenario, bug: Bug, invariants: &[&str]) {
    for seed in SEEDS {
        let r = run_seed(scenario, seed, &quick(Some(bug)));
        assert!(
            !r.passed,
            "seed {seed}: {} with {} went unnoticed",
            scenario.name(),
            bug.name()
        );
        assert!(r.violations.iter().all(|v| v.seed == seed));
        assert!(
            r.violations_by_invariant
                .iter()
                .any(|(name, _)| invariants.contains(&name.as_str())),
            "seed {seed}: expected one of {invariants:?}\n{r}"
        );
    }
}

/// Runs `scenario` without a bug on every seed; each run must pass.
fn passes(scenario: Scenario) -> Vec<RunReport> {
    SEEDS
        .iter()
        .map(|&seed| {
            let r = run_seed(scenario, seed, &quick(None));
            assert!(r.passed, "{r}");
            assert!(r.convergence.after_heal_ms.is_some(), "{r}");
            r
        })
        .collect()
}

#[test]
fn a_restored_backup_that_keeps_its_writer_id_reissues_seqs() {
    caught(Scenario::RestoreFromBackup, Bug::ReuseSeqs, &["seq-reused"]);
    for r in passes(Scenario::RestoreFromBackup) {
        assert_eq!(r.happenings.disk_faults, 2, "{r}");
        // A restored backup is consistent with its own marker: nothing is
        // reported, what it lacks is fetched.
        assert_eq!(r.happenings.missing_reported, 0, "{r}");
    }
}

#[test]
fn a_clone_that_keeps_the_copied_writer_id_reissues_seqs() {
    caught(Scenario::ClonedNode, Bug::ReuseSeqs, &["seq-reused"]);
    for r in passes(Scenario::ClonedNode) {
        assert_eq!(r.happenings.disk_faults, 1, "{r}");
        // The clone caught up with every acknowledged record.
        assert!(r.catch_up.iter().all(|c| c.ms.is_some()), "{r}");
    }
}

#[test]
fn a_cut_log_must_be_reported_at_start() {
    caught(Scenario::CorruptTail, Bug::IgnoreMarker, &["silent-loss"]);
    for r in passes(Scenario::CorruptTail) {
        assert!(r.happenings.missing_reported > 0, "{r}");
    }
}

#[test]
fn data_lost_under_covered_ids_must_come_back_from_peers() {
    caught(
        Scenario::LostData,
        Bug::NoRestore,
        &["no-convergence", "acked-record-missing"],
    );
    for r in passes(Scenario::LostData) {
        assert!(r.happenings.new_by_repair > 0, "{r}");
    }
}

#[test]
fn a_clock_days_ahead_must_not_collect_what_the_cluster_needs() {
    caught(
        Scenario::ClockDays,
        Bug::TrustLocalClock,
        &["gc-by-wrong-clock"],
    );
    for r in passes(Scenario::ClockDays) {
        assert_eq!(r.happenings.clock_jumps, 6, "{r}");
    }
}

#[test]
fn records_that_arrive_expired_by_a_wrong_clock_are_stored() {
    caught(
        Scenario::ClockDays,
        Bug::DropExpiredOnReceipt,
        &["cleared-live-record"],
    );
    for r in passes(Scenario::ClockDays) {
        // The node a day ahead took them in all the same.
        assert!(r.happenings.expired_on_receipt > 0, "{r}");
    }
}

#[test]
fn writes_resume_once_the_disk_works_again() {
    caught(Scenario::DiskFailure, Bug::HaltForever, &["no-convergence"]);
    for r in passes(Scenario::DiskFailure) {
        let h = &r.happenings;
        assert!(h.writes_halted >= 3 && h.writes_resumed >= 2, "{r}");
        assert!(h.revocations_refused > 0, "{r}");
    }
}

/// A node's clock runs an hour ahead while it revokes, is put right, and the
/// node restarts: without the stamp floor its store keeps, its new stamps go
/// below the ones it gave an hour "later" (`stamp-regressed`); with it, none
/// does.
#[test]
fn a_restart_after_a_clock_step_back_never_stamps_below_an_earlier_stamp() {
    use veto_sim::{params_for, run, FaultAction, FaultStep};
    const HOUR_MS: i64 = 3_600_000;
    for seed in SEEDS {
        let world = |bug| {
            let mut p = params_for(Scenario::Healthy5Regions, seed, &quick(bug));
            p.faults.extend([
                FaultStep {
                    at_ms: 500,
                    action: FaultAction::ClockJump {
                        node: 0,
                        delta_ms: HOUR_MS,
                    },
                },
                FaultStep {
                    at_ms: 3_000,
                    action: FaultAction::ClockJump {
                        node: 0,
                        delta_ms: -HOUR_MS,
                    },
                },
                FaultStep {
                    at_ms: 3_050,
                    action: FaultAction::Crash { node: 0 },
                },
                FaultStep {
                    at_ms: 3_100,
                    action: FaultAction::Restart { node: 0 },
                },
            ]);
            p.faults.sort_by_key(|s| s.at_ms);
            run(&p, false)
        };
        let broken = world(Some(Bug::NoStampFloor));
        assert!(
            broken
                .violations
                .iter()
                .any(|v| v.invariant == "stamp-regressed" && v.seed == seed),
            "seed {seed}: a stamp below an earlier one went unnoticed\n{broken}"
        );
        let fixed = world(None);
        assert!(fixed.passed, "{fixed}");
    }
}
