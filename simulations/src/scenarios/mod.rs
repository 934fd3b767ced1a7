//! Named scenarios, each a world and a fault plan drawn from the seed, in the
//! manner of FoundationDB's test files. `random` draws everything, the
//! world's parameters included, from the seed (swarm testing).

mod durability;
mod random;

use rand::Rng;

use crate::faults::{random_side, two, Plan};
use crate::params::{
    BulkImport, Chaos, DiskParams, EngineParams, Links, NetParams, Params, TransportParams,
    WorkloadParams,
};
use crate::regions::FIVE;
use crate::rng::{stream, SimRng, Stream};

/// How big a run is: `Full` for the command line, `Quick` for the test suite
/// (which runs hundreds of seeds in the debug profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The documented sizes (tens of seconds, thousands of revocations).
    Full,
    /// A few seconds and a few hundred revocations.
    Quick,
}

/// A named scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Five regions, one node each, no faults: the baseline for latency,
    /// traffic and speed (10,000 revocations over 60 s at full size).
    Healthy5Regions,
    /// Five regions split in two for a long while, plus one node cut off
    /// alone later; both sides keep revoking. Checks that the halves
    /// converge once the partition lifts.
    PartitionHeal,
    /// One-way partitions: some nodes can send but not receive (or the
    /// reverse), so connections die one side at a time and half-open
    /// connections linger. Checks nothing is lost to half-open connections.
    AsymmetricPartition,
    /// 10% packet loss on every inter-region link for the whole phase; QUIC
    /// retransmits, so records arrive late and lanes stall behind lost
    /// packets. Measures the latency cost.
    LossyWan10Pct,
    /// Nodes crash, losing their sessions, their index and every write still
    /// on its way to disk, then restart from what was durable.
    CrashRestart,
    /// Clocks seconds apart (one far ahead, one far behind, beyond the
    /// tolerated offset) and clocks that step forwards and backwards.
    /// Garbage collection then runs at different moments on each node.
    ClockSkew,
    /// Four regions run and import a large batch; a fifth region's node joins
    /// empty later and must stream the whole backlog with backpressure.
    NewRegionWithBacklog,
    /// Several links go down and up every few hundred milliseconds, one of
    /// them in one direction only.
    FlappingLinks,
    /// One hundred nodes in five regions (twenty each), full mesh, with one
    /// crash and one isolated node.
    LargeCluster100Nodes,
    /// Three hundred nodes in five regions (sixty each), the same faults.
    /// By name only (see [`Scenario::BY_NAME_ONLY`]).
    LargeCluster300Nodes,
    /// Nodes restored from backups, one of them while cut off.
    RestoreFromBackup,
    /// A new node started from a copy of another's data directory.
    ClonedNode,
    /// Logs cut short at a damaged entry, losing their last writes.
    CorruptTail,
    /// Records whose data is lost under ids still covered.
    LostData,
    /// Clocks hours and days ahead and behind, put right later.
    ClockDays,
    /// Disks that fail for a while, one until the heal.
    DiskFailure,
    /// Everything from the seed: regions, sizes, engine and transport
    /// settings, loss, chaos, disk failures, skew and a random fault plan.
    Random,
}

impl Scenario {
    /// Scenarios run by name only, not by `--scenario all` or the sweeps: a
    /// run takes minutes.
    pub const BY_NAME_ONLY: [Scenario; 1] = [Scenario::LargeCluster300Nodes];

    /// Every scenario of `--scenario all` and the sweeps, in documentation
    /// order.
    pub const ALL: [Scenario; 16] = [
        Scenario::Healthy5Regions,
        Scenario::PartitionHeal,
        Scenario::AsymmetricPartition,
        Scenario::LossyWan10Pct,
        Scenario::CrashRestart,
        Scenario::ClockSkew,
        Scenario::NewRegionWithBacklog,
        Scenario::FlappingLinks,
        Scenario::LargeCluster100Nodes,
        Scenario::RestoreFromBackup,
        Scenario::ClonedNode,
        Scenario::CorruptTail,
        Scenario::LostData,
        Scenario::ClockDays,
        Scenario::DiskFailure,
        Scenario::Random,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Healthy5Regions => "healthy-5-regions",
            Scenario::PartitionHeal => "partition-heal",
            Scenario::AsymmetricPartition => "asymmetric-partition",
            Scenario::LossyWan10Pct => "lossy-wan-10pct",
            Scenario::CrashRestart => "crash-restart",
            Scenario::ClockSkew => "clock-skew",
            Scenario::NewRegionWithBacklog => "new-region-with-backlog",
            Scenario::FlappingLinks => "flapping-links",
            Scenario::LargeCluster100Nodes => "large-cluster-100-nodes",
            Scenario::LargeCluster300Nodes => "large-cluster-300-nodes",
            Scenario::RestoreFromBackup => "restore-from-backup",
            Scenario::ClonedNode => "cloned-node",
            Scenario::CorruptTail => "corrupt-tail",
            Scenario::LostData => "lost-data",
            Scenario::ClockDays => "clock-days",
            Scenario::DiskFailure => "disk-failure",
            Scenario::Random => "random",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .chain(Scenario::BY_NAME_ONLY)
            .find(|s| s.name() == name)
    }

    /// A few lines on what the scenario does and checks.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::Healthy5Regions => "Five regions (us-east-1, us-west-2, eu-west-1, ap-south-1, ap-northeast-1), one node each, no faults. The baseline for latency, traffic and simulator speed: 10,000 revocations over 60 s.",
            Scenario::PartitionHeal => "Five regions split in two for 40% of the run, then one node cut off alone; both sides keep revoking. The halves must converge once the partition lifts.",
            Scenario::AsymmetricPartition => "One-way partitions: one node hears nobody but can still send, then one group cannot send to the other, and one single link is one-way. Connections die one side at a time; half-open connections linger until a reset.",
            Scenario::LossyWan10Pct => "10% packet loss on every inter-region link (QUIC retransmits after 9/8 RTT, holding back the lane) and 20% jitter. Measures what loss costs in latency.",
            Scenario::CrashRestart => "Three to six crashes of random nodes, each down up to a quarter of the run. A crash loses the sessions, the index and every write still on its way to disk; the node restarts from its durable store.",
            Scenario::ClockSkew => "Clocks up to 3 s apart, one node 40 s ahead and one 20 s behind (beyond the 500 ms tolerated offset), and three clock steps of 1-10 s forwards or backwards. Garbage collection then runs at different moments on each node.",
            Scenario::NewRegionWithBacklog => "Four regions run and one imports 30,000 records in one batch; a node in a fifth region (ap-southeast-1) joins empty at 40% of the run and takes the backlog, each origin from one peer, with backpressure (256-record batches).",
            Scenario::FlappingLinks => "Three links go down and up every 0.1-3 s for most of the run, two both ways and one in one direction only.",
            Scenario::LargeCluster100Nodes => "One hundred nodes in five regions (twenty each), all connected (pushes follow the region-aware tree); one node crashes for a quarter of the run and another is isolated for a fifth.",
            Scenario::LargeCluster300Nodes => "Three hundred nodes in five regions (sixty each), all connected, the same faults as large-cluster-100-nodes, over 10 s with 1,000 revocations (the same rate).",
            Scenario::RestoreFromBackup => "Two nodes are restored from backups of their data directories: one backed up at 15% and restored at 50% while connected (what it made since comes back from its peers), one backed up at 30%, cut off at 55% and restored at 70% while still cut off (what it made alone is gone for good, unreported, as documented). Each restarts under a fresh writer id.",
            Scenario::ClonedNode => "A sixth node starts at 40% from a copy of another node's data directory, in the same region, and must run as a node of its own (a fresh writer id, its own records); the source crashes and restarts later.",
            Scenario::CorruptTail => "Logs cut at a damaged entry: a node loses its last 5-40 writes at 30%, and its last few again at 85% while down; another is cut off at 50% and loses its last 5-40 writes at 65%, some of them never replicated. Each must report the loss at start (its durability marker) and fetch back what peers hold.",
            Scenario::LostData => "Two nodes lose the data of 10-50 records each while keeping their ids covered (the same frontier, a different digest); the holdings repair must bring every one back from peers.",
            Scenario::ClockDays => "Clocks far beyond the 500 ms tolerated offset, each put right later: one node 1-3 days ahead from 15% to 55%, one 1-12 hours behind from 30% to 70%, one 1-12 hours ahead from 60% to 85%. Records arrive expired by a wrong clock and must be stored; no clock may collect what the cluster still needs.",
            Scenario::DiskFailure => "Disks that fail every write for a while: one from 20% to 50%, one from 50% until the heal, one from 30% to 60% with a crash and restart in between. Writes halt (local revocations refused, peer records not acknowledged) and resume within 2 s of the disk working.",
            Scenario::Random => "Swarm testing: regions, node count, sizes, engine and transport settings, jitter, loss, transport chaos (drops, duplicates, reordering), disk and read failures, skew, late joiners (some started from a clone), clocks hours or days off for a while, and a random fault plan over every kind of fault (storage faults included), all drawn from the seed.",
        }
    }

    /// The world and fault plan of this scenario for `seed`.
    pub fn params(self, seed: u64, size: Size) -> Params {
        self.params_with(seed, size, &Overrides::default())
    }

    /// The same, with some of the world's size overridden.
    pub fn params_with(self, seed: u64, size: Size, ov: &Overrides) -> Params {
        let mut p = self.build(seed, size, ov);
        if let Some(r) = ov.revocations {
            p.workload.checks = p.workload.checks * r / p.workload.revocations.max(1);
            p.workload.revocations = r;
        }
        p
    }

    fn build(self, seed: u64, size: Size, ov: &Overrides) -> Params {
        let mut rng = stream(seed, Stream::Faults);
        let quick = size == Size::Quick;
        let five = || shape(&FIVE, ov.nodes);
        let base = |s: Scenario, regions: Vec<usize>, rng: &mut SimRng| {
            base(seed, s, regions, size, ov, rng)
        };
        match self {
            Scenario::Healthy5Regions => {
                let mut p = base(self, five(), &mut rng);
                p.workload.revocations = if quick { 300 } else { 10_000 };
                p.workload.checks = p.workload.revocations;
                p
            }
            Scenario::PartitionHeal => {
                let mut p = base(self, five(), &mut rng);
                let d = p.duration_ms;
                let n = p.nodes();
                let mut plan = Plan::default();
                let at = d / 5 + rng.gen_range(0..d / 10);
                plan.split(at, d * 2 / 5, random_side(&mut rng, n), n);
                let later = d * 7 / 10;
                plan.isolate(later, rng.gen_range(d / 20..=d / 5), rng.gen_range(0..n), n);
                p.faults = plan.finish();
                p
            }
            Scenario::AsymmetricPartition => {
                let mut p = base(self, five(), &mut rng);
                let d = p.duration_ms;
                let n = p.nodes();
                let mut plan = Plan::default();
                let (a, _) = two(&mut rng, n);
                let others = (0..n).filter(|&o| o != a).collect();
                // `a` can send but not receive, for longer than the idle timeout.
                plan.partition(
                    d / 10,
                    d * 3 / 10,
                    Links {
                        from: others,
                        to: vec![a],
                        both_ways: false,
                    },
                );
                let side = random_side(&mut rng, n);
                let rest = (0..n).filter(|o| !side.contains(o)).collect();
                plan.partition(
                    d / 2,
                    d * 3 / 10,
                    Links {
                        from: side,
                        to: rest,
                        both_ways: false,
                    },
                );
                let (x, y) = two(&mut rng, n);
                plan.partition(
                    d / 5,
                    d / 2,
                    Links {
                        from: vec![x],
                        to: vec![y],
                        both_ways: false,
                    },
                );
                p.faults = plan.finish();
                p
            }
            Scenario::LossyWan10Pct => {
                let mut p = base(self, five(), &mut rng);
                p.net.loss = 0.10;
                p.net.jitter = 0.2;
                p
            }
            Scenario::CrashRestart => {
                let mut p = base(self, five(), &mut rng);
                let d = p.duration_ms;
                let n = p.nodes();
                let mut plan = Plan::default();
                for _ in 0..rng.gen_range(3..=6) {
                    let at = rng.gen_range(d / 10..d * 9 / 10);
                    plan.crash(at, rng.gen_range(200..=d / 4), rng.gen_range(0..n));
                }
                p.faults = plan.finish();
                p
            }
            Scenario::ClockSkew => {
                let mut p = base(self, five(), &mut rng);
                let n = p.nodes();
                p.skew_ms = (0..n).map(|_| rng.gen_range(-3_000..=3_000)).collect();
                let (ahead, behind) = two(&mut rng, n);
                p.skew_ms[ahead] = 40_000;
                p.skew_ms[behind] = -20_000;
                let d = p.duration_ms;
                let mut plan = Plan::default();
                for _ in 0..3 {
                    let delta = rng.gen_range(1_000..=10_000) as i64;
                    let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
                    plan.jump(
                        rng.gen_range(d / 10..d * 9 / 10),
                        rng.gen_range(0..n),
                        sign * delta,
                    );
                }
                p.faults = plan.finish();
                p
            }
            Scenario::NewRegionWithBacklog => {
                let mut regions = five();
                let last = regions.len() - 1;
                regions[last] = 7;
                let mut p = base(self, regions, &mut rng);
                let d = p.duration_ms;
                p.late_joiners = vec![last];
                p.engine.max_batch_records = 256;
                p.workload.bulk_import = Some(BulkImport {
                    at_ms: p.warmup_ms,
                    node: rng.gen_range(0..last),
                    count: if quick { 2_000 } else { 30_000 },
                });
                let mut plan = Plan::default();
                plan.start(d * 2 / 5, last);
                p.faults = plan.finish();
                p
            }
            Scenario::FlappingLinks => {
                let mut p = base(self, five(), &mut rng);
                let d = p.duration_ms;
                let n = p.nodes();
                let mut plan = Plan::default();
                for k in 0..3 {
                    let (a, b) = two(&mut rng, n);
                    let low = rng.gen_range(100..=1_000);
                    plan.flap(&mut rng, d / 10, d * 9 / 10, a, b, (low, low * 3), k != 0);
                }
                p.faults = plan.finish();
                p
            }
            Scenario::LargeCluster100Nodes | Scenario::LargeCluster300Nodes => {
                let large = self == Scenario::LargeCluster300Nodes;
                let nodes = if large { 300 } else { 100 };
                let regions = shape(&FIVE, Some(ov.nodes.unwrap_or(nodes)));
                let mut p = base(self, regions, &mut rng);
                let n = p.nodes();
                let full = if large { 10_000 } else { 30_000 };
                p.duration_ms = ov.duration_ms.unwrap_or(if quick { 1_500 } else { full });
                p.workload.revocations = if quick { 50 } else { full / 10 };
                p.workload.checks = p.workload.revocations;
                let d = p.duration_ms;
                let mut plan = Plan::default();
                if !quick {
                    plan.crash(d / 4, d / 4, rng.gen_range(0..n));
                    plan.isolate(d / 2, d / 5, rng.gen_range(0..n), n);
                }
                p.faults = plan.finish();
                p
            }
            Scenario::RestoreFromBackup => {
                let mut p = base(self, five(), &mut rng);
                durability::restore_from_backup(&mut p, &mut rng);
                p
            }
            Scenario::ClonedNode => {
                let mut regions = five();
                let from = rng.gen_range(0..regions.len());
                regions.push(regions[from]);
                let mut p = base(self, regions, &mut rng);
                durability::cloned_node(&mut p, from);
                p
            }
            Scenario::CorruptTail => {
                let mut p = base(self, five(), &mut rng);
                durability::corrupt_tail(&mut p, &mut rng);
                p
            }
            Scenario::LostData => {
                let mut p = base(self, five(), &mut rng);
                durability::lost_data(&mut p, &mut rng);
                p
            }
            Scenario::ClockDays => {
                let mut p = base(self, five(), &mut rng);
                durability::clock_days(&mut p, &mut rng);
                p
            }
            Scenario::DiskFailure => {
                let mut p = base(self, five(), &mut rng);
                durability::disk_failure(&mut p, &mut rng);
                p
            }
            Scenario::Random => random::random(seed, size, ov, &mut rng),
        }
    }
}

/// Overrides of a scenario's size, from the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Number of nodes, spread round-robin over the scenario's regions.
    pub nodes: Option<usize>,
    /// Revocations over the run (checks scale along).
    pub revocations: Option<u64>,
    /// Length of the workload and fault phase, ms.
    pub duration_ms: Option<u64>,
}

/// `nodes` nodes (default: one per region) spread over `regions`, in region
/// order: all the nodes of one region are adjacent.
pub(super) fn shape(regions: &[usize], nodes: Option<usize>) -> Vec<usize> {
    let n = nodes.unwrap_or(regions.len()).max(2);
    let k = regions.len().max(1);
    let mut out: Vec<usize> = (0..n).map(|i| regions[i * k / n]).collect();
    out.sort_by_key(|r| regions.iter().position(|x| x == r));
    out
}

/// The defaults every named scenario starts from: realistic settings, the
/// engine's and transport's own defaults, NTP-grade clocks.
pub(super) fn base(
    seed: u64,
    s: Scenario,
    node_regions: Vec<usize>,
    size: Size,
    ov: &Overrides,
    rng: &mut SimRng,
) -> Params {
    let quick = size == Size::Quick;
    let n = node_regions.len();
    let revocations = if quick { 200 } else { 3_000 };
    Params {
        seed,
        scenario: s.name().to_owned(),
        node_regions,
        late_joiners: Vec::new(),
        // NTP keeps clocks within tens of milliseconds.
        skew_ms: (0..n).map(|_| rng.gen_range(-50..=50)).collect(),
        duration_ms: ov.duration_ms.unwrap_or(if quick { 8_000 } else { 60_000 }),
        warmup_ms: 1_000,
        settle_ms: 1_000,
        gc_interval_ms: 1_000,
        workload: WorkloadParams {
            revocations,
            checks: 2 * revocations,
            batch_prob: 0.02,
            max_batch: 20,
            short_lived: 0.5,
            short_life_s: (2, 20),
            long_life_s: (600, 3_600),
            bulk_import: None,
        },
        engine: EngineParams {
            anti_entropy_ms: 2_000,
            max_batch_records: 1_024,
            max_batch_bytes: 256 * 1024,
            window: 4,
            ack_timeout_ms: 30_000,
            handshake_timeout_ms: 10_000,
            push_grace_ms: 1_000,
            retry_delay_ms: 1_000,
            gc_grace_s: 5,
            max_clock_offset_ms: 500,
        },
        transport: TransportParams {
            idle_timeout_ms: 10_000,
            keep_alive_ms: 2_000,
            dial_timeout_ms: 5_000,
            backoff_min_ms: 100,
            backoff_max_ms: 10_000,
            stable_ms: 5_000,
        },
        net: NetParams {
            jitter: 0.1,
            loss: 0.0,
            bandwidth_mbps: 1_000.0,
        },
        disk: DiskParams {
            min_us: 200,
            max_us: 2_000,
            fail_prob: 0.0,
            read_fail_prob: 0.0,
        },
        base_chaos: Chaos::default(),
        faults: Vec::new(),
        bug: None,
    }
}
