//! veto-sim: deterministic chaos simulation of veto clusters, in the manner of
//! TigerBeetle's VOPR and FoundationDB's simulation.
//!
//! A run builds a world from one seed: nodes in regions, each running the real
//! replication engine (`veto_gossip::engine`) and lookup index
//! (`veto_core::LookupIndex`) over an in-memory durable store, with its own
//! skewed clock; a network with realistic inter-region latencies, loss,
//! partitions, flapping links and transport chaos; clients revoking and
//! checking at random nodes; crashes, clock jumps far beyond the tolerated
//! offset, and storage faults (restored backups, cloned data directories, logs
//! cut short, lost data, disks that fail for a while). Every frame is a real
//! encoded protocol message. Invariants are checked throughout
//! ([`invariants`](crate::Violation)); the run reports propagation latency,
//! convergence after the heal against a derived bound, and traffic.
//!
//! The same seed replays the same run, event for event: every random choice,
//! the world's parameters included, comes from the seed, events at one
//! instant run in scheduling order, and nothing depends on hash iteration or
//! the OS clock.
//!
//! This crate is a test harness: it must never depend on tokio, quinn, sockets
//! or the OS clock for anything a run computes (wall time is only measured to
//! report the simulator's own speed).

mod actions;
mod audit;
mod bound;
mod damage;
mod disk;
mod ending;
mod enforcement;
mod faults;
mod invariants;
mod metrics;
mod net;
mod node;
mod params;
mod persist;
pub mod regions;
mod report;
mod rng;
mod scenarios;
mod sched;
mod storage;
mod store;
mod sweep;
mod workload;
mod world;

use std::time::Instant;

pub use bound::Bound;
pub use invariants::Violation;
pub use params::{
    Bug, BulkImport, Chaos, DiskParams, EngineParams, FaultAction, FaultStep, Links, NetParams,
    Params, TransportParams, WorkloadParams,
};
pub use report::{
    CatchUpReport, Convergence, Happenings, KindTraffic, Propagation, RunReport, Traffic,
};
pub use scenarios::{Overrides, Scenario, Size};
pub use sweep::{sweep, FailedRun, ScenarioSummary, Selection, SweepReport};

/// How to run a scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Full or quick sizes.
    pub size: Size,
    /// A deliberate bug to inject.
    pub bug: Option<Bug>,
    /// Print every event to stderr.
    pub trace: bool,
    /// Size overrides.
    pub overrides: Overrides,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            size: Size::Full,
            bug: None,
            trace: false,
            overrides: Overrides::default(),
        }
    }
}

/// The parameters `scenario` gets for `seed` under `opts`.
pub fn params_for(scenario: Scenario, seed: u64, opts: &RunOptions) -> Params {
    let mut p = scenario.params_with(seed, opts.size, &opts.overrides);
    p.bug = opts.bug;
    p
}

/// Runs one world to its end and reports.
pub fn run(params: &Params, trace: bool) -> RunReport {
    let clock = Instant::now();
    let mut world = world::World::new(params.clone(), trace);
    world.run();
    RunReport::build(&world, clock.elapsed().as_secs_f64() * 1e3)
}

/// Runs `scenario` with `seed`.
pub fn run_seed(scenario: Scenario, seed: u64, opts: &RunOptions) -> RunReport {
    run(&params_for(scenario, seed, opts), opts.trace)
}
