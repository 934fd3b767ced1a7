//! veto-sim command line: one seed, a replay, a sweep, or a scaling study.

use std::process::ExitCode;

use clap::Parser;
use veto_sim::{
    params_for, run, run_seed, sweep, Bug, Overrides, RunOptions, RunReport, Scenario, Selection,
    Size,
};

/// Deterministic chaos simulation of a veto cluster.
///
/// `veto-sim --scenario NAME --seed N` replays a run exactly.
#[derive(Parser, Debug)]
#[command(name = "veto-sim", version)]
struct Cli {
    /// Scenario name (see --list), or `all` to cycle through every scenario
    /// by seed in a sweep.
    #[arg(long, default_value = "random")]
    scenario: String,
    /// The seed of a single run, or the first seed of a sweep. Without it a
    /// single run draws a seed and prints it.
    #[arg(long)]
    seed: Option<u64>,
    /// Sweep this many seeds, from --seed (default 0).
    #[arg(long)]
    seeds: Option<u64>,
    /// Worker threads for a sweep.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Quick sizes, as the test suite runs them.
    #[arg(long)]
    quick: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Inject a deliberate bug: drop-origin, lose-unsynced, reuse-seqs,
    /// trust-local-clock, ignore-marker, drop-expired-on-receipt, no-restore
    /// or halt-forever (see simulations/README.md).
    #[arg(long)]
    inject_bug: Option<String>,
    /// Override the number of nodes.
    #[arg(long)]
    nodes: Option<usize>,
    /// Override the number of revocations.
    #[arg(long)]
    revocations: Option<u64>,
    /// Override the length of the workload phase, in seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Print every event of a single run to stderr.
    #[arg(long)]
    trace: bool,
    /// Print one line per run of a sweep, or the fault plan of a single run.
    #[arg(long)]
    verbose: bool,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Measure messages per revocation at 5, 10, 25, 50 and 100 nodes.
    #[arg(long)]
    scaling: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list {
        for s in Scenario::ALL.into_iter().chain(Scenario::BY_NAME_ONLY) {
            println!("{}\n    {}\n", s.name(), s.describe());
        }
        return ExitCode::SUCCESS;
    }
    let bug = match cli.inject_bug.as_deref().map(|b| (b, Bug::parse(b))) {
        None => None,
        Some((_, Some(bug))) => Some(bug),
        Some((name, None)) => {
            eprintln!("unknown bug {name:?}; known: {}", Bug::names());
            return ExitCode::from(2);
        }
    };
    let selection = if cli.scenario == "all" {
        Selection::All
    } else {
        match Scenario::parse(&cli.scenario) {
            Some(s) => Selection::One(s),
            None => {
                eprintln!("unknown scenario {:?}; see --list", cli.scenario);
                return ExitCode::from(2);
            }
        }
    };
    let opts = RunOptions {
        size: if cli.quick { Size::Quick } else { Size::Full },
        bug,
        trace: cli.trace,
        overrides: Overrides {
            nodes: cli.nodes,
            revocations: cli.revocations,
            duration_ms: cli.duration.map(|s| (s * 1e3) as u64),
        },
    };
    if cli.scaling {
        return scaling(&cli, &opts);
    }
    if let Some(count) = cli.seeds {
        let start = cli.seed.unwrap_or(0);
        let verbose = cli.verbose;
        let report = sweep(selection, start, count, &opts, cli.workers, |r| {
            if verbose {
                eprintln!(
                    "{} seed {:>6} {:<24} {:>7.0} ms wall  conv {:>7} ms  p99 {:>7.1} ms",
                    if r.passed { "ok  " } else { "FAIL" },
                    r.seed,
                    r.scenario,
                    r.wall_ms,
                    r.convergence
                        .after_heal_ms
                        .map_or("never".into(), |x| format!("{x:.0}")),
                    r.propagation.p99_ms
                );
            }
        });
        if cli.json {
            match serde_json::to_string_pretty(&report) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("cannot encode the report: {e}"),
            }
        } else {
            print!("{report}");
        }
        return if report.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let seed = cli.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t % 1_000_000_000
    });
    let scenario = selection.scenario(seed);
    if !cli.json {
        println!(
            "seed {seed} (replay: veto-sim --scenario {} --seed {seed}{})",
            scenario.name(),
            replay_flags(&cli)
        );
    }
    let report = run_seed(scenario, seed, &opts);
    if cli.verbose && !cli.json {
        for step in &report.world.faults {
            println!("  at {:>8} ms  {:?}", step.at_ms, step.action);
        }
    }
    print_one(&report, cli.json);
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay_flags(cli: &Cli) -> String {
    let mut s = String::new();
    if cli.quick {
        s.push_str(" --quick");
    }
    if let Some(b) = &cli.inject_bug {
        s.push_str(&format!(" --inject-bug {b}"));
    }
    if let Some(n) = cli.nodes {
        s.push_str(&format!(" --nodes {n}"));
    }
    if let Some(r) = cli.revocations {
        s.push_str(&format!(" --revocations {r}"));
    }
    if let Some(d) = cli.duration {
        s.push_str(&format!(" --duration {d}"));
    }
    s
}

fn print_one(report: &RunReport, json: bool) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode the report: {e}"),
        }
    } else {
        print!("{report}");
    }
}

/// Traffic per revocation as the cluster grows, at a fixed total revocation
/// rate, on the healthy scenario.
fn scaling(cli: &Cli, opts: &RunOptions) -> ExitCode {
    let seed = cli.seed.unwrap_or(1);
    let mut ok = true;
    let mut rows = Vec::new();
    println!(
        "{:>5} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9} {:>8}",
        "nodes",
        "msg/rev",
        "push/rev",
        "front/rev",
        "other",
        "bytes/rev",
        "p50 ms",
        "p99 ms",
        "wall ms"
    );
    for nodes in [5usize, 10, 25, 50, 100] {
        let mut o = opts.clone();
        o.overrides.nodes = Some(nodes);
        o.overrides.revocations = Some(cli.revocations.unwrap_or(3_000));
        o.overrides.duration_ms = Some(cli.duration.map_or(30_000, |s| (s * 1e3) as u64));
        let p = params_for(Scenario::Healthy5Regions, seed, &o);
        let r = run(&p, false);
        ok &= r.passed;
        let acked = r.acknowledged.max(1) as f64;
        let kind = |k: &str| {
            r.traffic
                .by_kind
                .iter()
                .find(|x| x.kind == k)
                .map_or(0, |x| x.messages) as f64
                / acked
        };
        let (push, frontier) = (kind("Push"), kind("Frontier"));
        let other = r.traffic.messages_per_revocation - push - frontier;
        println!(
            "{:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>9.1} {:>9.1} {:>8.0}",
            nodes,
            r.traffic.messages_per_revocation,
            push,
            frontier,
            other,
            r.traffic.bytes_per_revocation,
            r.propagation.p50_ms,
            r.propagation.p99_ms,
            r.wall_ms
        );
        rows.push(r);
    }
    if cli.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("cannot encode the report: {e}"),
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
