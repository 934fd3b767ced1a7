//! Many seeds at once, on worker threads. Each run is a pure function of its
//! seed, and results are gathered by seed, so the report does not depend on
//! how the threads were scheduled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use serde::Serialize;

use crate::invariants::Violation;
use crate::report::{quantile, RunReport};
use crate::scenarios::Scenario;
use crate::{run_seed, RunOptions};

/// Which scenarios a sweep runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// One scenario for every seed.
    One(Scenario),
    /// Seed `s` runs scenario `s mod 16`, in the order of [`Scenario::ALL`].
    All,
}

impl Selection {
    /// The scenario seed `seed` runs.
    pub fn scenario(self, seed: u64) -> Scenario {
        match self {
            Selection::One(s) => s,
            Selection::All => Scenario::ALL[(seed % Scenario::ALL.len() as u64) as usize],
        }
    }
}

/// A run that broke an invariant.
#[derive(Clone, Debug, Serialize)]
pub struct FailedRun {
    /// Its seed.
    pub seed: u64,
    /// Its scenario.
    pub scenario: String,
    /// Its first violation.
    pub first: Option<Violation>,
    /// How many violations it had.
    pub violations: u64,
}

/// Aggregates over the runs of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioSummary {
    /// The scenario.
    pub scenario: String,
    /// Runs.
    pub runs: u64,
    /// Runs that broke an invariant.
    pub failures: u64,
    /// Median over runs of the median propagation latency, ms.
    pub propagation_p50_ms: f64,
    /// 99th percentile over runs of the 99th-percentile latency, ms.
    pub propagation_p99_ms: f64,
    /// Largest propagation latency seen, ms.
    pub propagation_max_ms: f64,
    /// Median convergence time after the heal, ms.
    pub convergence_p50_ms: f64,
    /// 99th percentile of it, ms.
    pub convergence_p99_ms: f64,
    /// Largest convergence time, ms.
    pub convergence_max_ms: f64,
    /// Largest convergence time as a share of that run's bound.
    pub convergence_bound_ratio_max: f64,
    /// Mean messages per revocation.
    pub messages_per_revocation: f64,
    /// Mean bytes per revocation.
    pub bytes_per_revocation: f64,
    /// Simulated seconds in all.
    pub simulated_s: f64,
}

/// The outcome of a sweep.
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// First seed.
    pub start: u64,
    /// Runs.
    pub runs: u64,
    /// Worker threads.
    pub workers: usize,
    /// Wall-clock time, ms.
    pub wall_ms: f64,
    /// Runs that broke an invariant, by seed.
    pub failed: Vec<FailedRun>,
    /// Per scenario.
    pub scenarios: Vec<ScenarioSummary>,
}

/// Runs seeds `start..start + count` on `workers` threads.
pub fn sweep(
    selection: Selection,
    start: u64,
    count: u64,
    opts: &RunOptions,
    workers: usize,
    mut each: impl FnMut(&RunReport),
) -> SweepReport {
    let clock = Instant::now();
    let next = AtomicU64::new(0);
    let workers = workers.max(1);
    let mut reports: Vec<Option<RunReport>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(u64, RunReport)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let seed = start + i;
                let report = run_seed(selection.scenario(seed), seed, opts);
                if tx.send((i, report)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        // Reports are shown in seed order as soon as every earlier one is in.
        let mut shown = 0u64;
        for (i, report) in rx {
            reports[i as usize] = Some(report);
            while let Some(Some(r)) = reports.get(shown as usize) {
                each(r);
                shown += 1;
            }
        }
    });
    let reports: Vec<RunReport> = reports.into_iter().flatten().collect();
    summarize(
        start,
        workers,
        clock.elapsed().as_secs_f64() * 1e3,
        &reports,
    )
}

fn summarize(start: u64, workers: usize, wall_ms: f64, reports: &[RunReport]) -> SweepReport {
    let failed = reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| FailedRun {
            seed: r.seed,
            scenario: r.scenario.clone(),
            first: r.violations.first().cloned(),
            violations: r.violation_count,
        })
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for r in reports {
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    names.sort_by_key(|n| Scenario::ALL.iter().position(|s| s.name() == *n));
    let scenarios = names
        .into_iter()
        .map(|name| {
            let runs: Vec<&RunReport> = reports.iter().filter(|r| r.scenario == name).collect();
            let sorted = |f: &dyn Fn(&RunReport) -> Option<f64>| {
                let mut v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let p50 = sorted(&|r| Some(r.propagation.p50_ms));
            let p99 = sorted(&|r| Some(r.propagation.p99_ms));
            let max = sorted(&|r| Some(r.propagation.max_ms));
            let conv = sorted(&|r| r.convergence.after_heal_ms);
            let ratio = sorted(&|r| {
                let b = r.convergence.bound.as_ref()?.total_ms;
                Some(r.convergence.after_heal_ms? / b.max(1.0))
            });
            let n = runs.len().max(1) as f64;
            ScenarioSummary {
                scenario: name.to_owned(),
                runs: runs.len() as u64,
                failures: runs.iter().filter(|r| !r.passed).count() as u64,
                propagation_p50_ms: quantile(&p50, 0.5),
                propagation_p99_ms: quantile(&p99, 0.99),
                propagation_max_ms: max.last().copied().unwrap_or(0.0),
                convergence_p50_ms: quantile(&conv, 0.5),
                convergence_p99_ms: quantile(&conv, 0.99),
                convergence_max_ms: conv.last().copied().unwrap_or(0.0),
                convergence_bound_ratio_max: ratio.last().copied().unwrap_or(0.0),
                messages_per_revocation: runs
                    .iter()
                    .map(|r| r.traffic.messages_per_revocation)
                    .sum::<f64>()
                    / n,
                bytes_per_revocation: runs
                    .iter()
                    .map(|r| r.traffic.bytes_per_revocation)
                    .sum::<f64>()
                    / n,
                simulated_s: runs.iter().map(|r| r.sim_ms / 1e3).sum(),
            }
        })
        .collect();
    SweepReport {
        start,
        runs: reports.len() as u64,
        workers,
        wall_ms,
        failed,
        scenarios,
    }
}

impl std::fmt::Display for SweepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} runs (seeds {}..{}) on {} workers in {:.1} s; {} failed",
            self.runs,
            self.start,
            self.start + self.runs,
            self.workers,
            self.wall_ms / 1e3,
            self.failed.len()
        )?;
        writeln!(
            f,
            "{:<24} {:>5} {:>4} | {:>8} {:>8} {:>9} | {:>8} {:>8} {:>8} {:>6} | {:>7} {:>8}",
            "scenario",
            "runs",
            "fail",
            "prop p50",
            "p99",
            "max",
            "conv p50",
            "p99",
            "max",
            "/bound",
            "msg/rev",
            "B/rev"
        )?;
        for s in &self.scenarios {
            writeln!(
                f,
                "{:<24} {:>5} {:>4} | {:>8.1} {:>8.1} {:>9.1} | {:>8.0} {:>8.0} {:>8.0} {:>6.3} | {:>7.1} {:>8.0}",
                s.scenario,
                s.runs,
                s.failures,
                s.propagation_p50_ms,
                s.propagation_p99_ms,
                s.propagation_max_ms,
                s.convergence_p50_ms,
                s.convergence_p99_ms,
                s.convergence_max_ms,
                s.convergence_bound_ratio_max,
                s.messages_per_revocation,
                s.bytes_per_revocation
            )?;
        }
        writeln!(f, "(latencies and convergence times in simulated ms)")?;
        for r in &self.failed {
            match &r.first {
                Some(v) => writeln!(
                    f,
                    "FAILED {} ({} violations): {v}",
                    r.scenario, r.violations
                )?,
                None => writeln!(f, "FAILED seed {} {}", r.seed, r.scenario)?,
            }
        }
        Ok(())
    }
}
