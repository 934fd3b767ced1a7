//! A world's parameters: everything a run depends on besides its seed's dice.
//! Scenarios fill them in; the random scenario draws them all from the seed.

use std::fmt;
use veto_node::{Fault, Faults};

use serde::Serialize;

use crate::regions::REGIONS;

/// A deliberately broken behaviour, to show that the checker catches bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// The first node's store silently drops every record of the second
    /// node's origin that it is asked to persist, yet reports it durable.
    DropOrigin,
    /// A crash loses the writes of the last 200 ms that the disk had reported
    /// durable (a missing fsync).
    LoseUnsynced,
    /// A node started from an existing data directory (a restart, a restored
    /// backup, a clone) keeps the directory's id and numbers on from the
    /// highest seq its store holds, instead of taking a fresh id: the
    /// behaviour that lets a restored or cloned data directory issue an id
    /// twice.
    ReuseSeqs,
    /// Garbage collection goes by the node's own clock, whatever its peers'
    /// clocks say: a clock far ahead collects records the cluster still needs.
    TrustLocalClock,
    /// A node does not compare its store with its durability marker at start:
    /// a truncated log goes unreported.
    IgnoreMarker,
    /// The old engine: a record that arrives already past `expires_at +
    /// grace` by the receiver's own clock is covered without its data instead
    /// of stored.
    DropExpiredOnReceipt,
    /// The driver ignores `Persist.restore`: data lost under covered ids is
    /// never taken back from peers.
    NoRestore,
    /// After a failed write the node never resumes writes (until it restarts),
    /// even once the disk works again.
    HaltForever,
    /// A restarted node's hybrid clock starts from its wall clock alone, not
    /// above the last stamp its store keeps: after the clock stepped back, its
    /// new stamps go below ones it gave before.
    NoStampFloor,
    /// veto-node's `ack-before-durable` (production's own code): a local
    /// revocation is acknowledged before its record is durable.
    AckBeforeDurable,
    /// veto-node's `advertise-before-durable` (production's own code): a
    /// received record counts in the advertised frontier before it is
    /// durable.
    AdvertiseBeforeDurable,
    /// veto-node's `report-before-durable` (production's own code): a node's
    /// report, which receipts are made from, counts records before they are
    /// durable.
    ReportBeforeDurable,
}

impl Bug {
    /// Every bug, for the command line.
    pub const ALL: [Bug; 12] = [
        Bug::DropOrigin,
        Bug::LoseUnsynced,
        Bug::ReuseSeqs,
        Bug::TrustLocalClock,
        Bug::IgnoreMarker,
        Bug::DropExpiredOnReceipt,
        Bug::NoRestore,
        Bug::HaltForever,
        Bug::NoStampFloor,
        Bug::AckBeforeDurable,
        Bug::AdvertiseBeforeDurable,
        Bug::ReportBeforeDurable,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Bug::DropOrigin => "drop-origin",
            Bug::LoseUnsynced => "lose-unsynced",
            Bug::ReuseSeqs => "reuse-seqs",
            Bug::TrustLocalClock => "trust-local-clock",
            Bug::IgnoreMarker => "ignore-marker",
            Bug::DropExpiredOnReceipt => "drop-expired-on-receipt",
            Bug::NoRestore => "no-restore",
            Bug::HaltForever => "halt-forever",
            Bug::NoStampFloor => "no-stamp-floor",
            Bug::AckBeforeDurable => Fault::AckBeforeDurable.name(),
            Bug::AdvertiseBeforeDurable => Fault::AdvertiseBeforeDurable.name(),
            Bug::ReportBeforeDurable => Fault::ReportBeforeDurable.name(),
        }
    }

    /// The faults of the shared node code this bug injects (none for the
    /// bugs of the simulator's own stand-ins).
    pub fn node_faults(self) -> Faults {
        match self {
            Bug::AckBeforeDurable => Faults::none().with(Fault::AckBeforeDurable),
            Bug::AdvertiseBeforeDurable => Faults::none().with(Fault::AdvertiseBeforeDurable),
            Bug::ReportBeforeDurable => Faults::none().with(Fault::ReportBeforeDurable),
            _ => Faults::none(),
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Every bug's name, comma-separated, for help and error messages.
    pub fn names() -> String {
        Bug::ALL
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the clients do.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadParams {
    /// Revocations over the workload phase (a Poisson process; batches count
    /// each of their records).
    pub revocations: u64,
    /// Checks over the workload phase.
    pub checks: u64,
    /// Chance that a revocation request is a batch.
    pub batch_prob: f64,
    /// The largest batch.
    pub max_batch: usize,
    /// Share of records that expire within seconds, so that garbage
    /// collection runs during the run.
    pub short_lived: f64,
    /// Lifetime of a short-lived record, seconds (low, high).
    pub short_life_s: (u64, u64),
    /// Lifetime of another record, seconds (low, high).
    pub long_life_s: (u64, u64),
    /// A bulk import of `count` records at one node at `at_ms`, as one batch.
    pub bulk_import: Option<BulkImport>,
}

/// A large batch revoked at once.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BulkImport {
    /// When, ms.
    pub at_ms: u64,
    /// At which node.
    pub node: usize,
    /// How many records.
    pub count: usize,
}

/// The replication engine's settings (see `veto_gossip::engine::Config`).
#[derive(Clone, Debug, Serialize)]
pub struct EngineParams {
    /// Mean anti-entropy period, ms.
    pub anti_entropy_ms: u64,
    /// Records per backlog batch.
    pub max_batch_records: usize,
    /// Bytes per backlog batch.
    pub max_batch_bytes: usize,
    /// Backlog batches in flight per peer.
    pub window: usize,
    /// Unacknowledged batch timeout, ms.
    pub ack_timeout_ms: u64,
    /// Time a peer has to send its Hello, ms.
    pub handshake_timeout_ms: u64,
    /// How long pushed records count as on their way, ms.
    pub push_grace_ms: u64,
    /// Wait after a failed read, ms.
    pub retry_delay_ms: u64,
    /// Garbage-collection grace after `expires_at`, seconds.
    pub gc_grace_s: u64,
    /// Tolerated clock offset of a peer's stamps, ms.
    pub max_clock_offset_ms: u64,
}

/// The QUIC transport's connection management (see
/// `veto_gossip::transport::TransportConfig`).
#[derive(Clone, Debug, Serialize)]
pub struct TransportParams {
    /// A connection silent this long is dead, ms.
    pub idle_timeout_ms: u64,
    /// Keep-alive interval, ms: how soon a live side notices that the far side
    /// forgot the connection (stateless reset).
    pub keep_alive_ms: u64,
    /// A dial to an unreachable or dead peer gives up after this long, ms.
    pub dial_timeout_ms: u64,
    /// First redial wait, ms.
    pub backoff_min_ms: u64,
    /// Longest redial wait, ms.
    pub backoff_max_ms: u64,
    /// A connection that lived this long resets the backoff, ms.
    pub stable_ms: u64,
}

/// The network's steady behaviour (faults come on top).
#[derive(Clone, Debug, Serialize)]
pub struct NetParams {
    /// Extra one-way delay, as a fraction of the base one-way latency, drawn
    /// uniformly from zero to this per message.
    pub jitter: f64,
    /// Packet loss on links between regions until the heal (QUIC retransmits:
    /// each loss costs 9/8 RTT, RFC 9002).
    pub loss: f64,
    /// Bandwidth of one connection's bulk lane, Mbit/s.
    pub bandwidth_mbps: f64,
}

/// The disks.
#[derive(Clone, Debug, Serialize)]
pub struct DiskParams {
    /// Fastest durable write, µs.
    pub min_us: u64,
    /// Slowest durable write, µs.
    pub max_us: u64,
    /// Chance that a persist request fails (until the heal).
    pub fail_prob: f64,
    /// Chance that a read for a peer fails (until the heal).
    pub read_fail_prob: f64,
}

/// Which links a partition or a bout of chaos affects: every link from a node
/// of `from` to a node of `to`, and back too when `both_ways`.
#[derive(Clone, Debug, Serialize)]
pub struct Links {
    /// Senders.
    pub from: Vec<usize>,
    /// Receivers.
    pub to: Vec<usize>,
    /// Whether the reverse direction is affected too.
    pub both_ways: bool,
}

impl Links {
    /// The directed links, `(from, to)`, without self-links.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for &a in &self.from {
            for &b in &self.to {
                if a != b {
                    out.push((a, b));
                    if self.both_ways {
                        out.push((b, a));
                    }
                }
            }
        }
        out
    }
}

/// Transport-breaking misbehaviour of links: QUIC never does this, but a
/// replication protocol should stay safe if its transport does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Chaos {
    /// Extra packet loss (retransmitted, adds delay).
    pub loss: f64,
    /// Chance a message vanishes for good.
    pub drop: f64,
    /// Chance a message is delivered twice.
    pub duplicate: f64,
    /// Chance a message overtakes the ones before it.
    pub reorder: f64,
}

/// One step of a fault plan.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultAction {
    /// Blocks links until the matching `Heal`.
    Partition {
        /// Names the partition.
        id: u32,
        /// The links.
        links: Links,
    },
    /// Lifts partition `id`.
    Heal {
        /// The partition.
        id: u32,
    },
    /// Links misbehave until the matching `Calm`.
    Chaos {
        /// Names the bout.
        id: u32,
        /// The links.
        links: Links,
        /// How.
        chaos: Chaos,
    },
    /// Ends chaos `id`.
    Calm {
        /// The bout.
        id: u32,
    },
    /// The node crashes, losing everything not durable.
    Crash {
        /// The node.
        node: usize,
    },
    /// The node restarts from its durable state.
    Restart {
        /// The node.
        node: usize,
    },
    /// The node's wall clock steps by `delta_ms` (negative: backwards).
    ClockJump {
        /// The node.
        node: usize,
        /// The step, ms.
        delta_ms: i64,
    },
    /// A node that was not running joins for the first time, empty.
    Start {
        /// The node.
        node: usize,
    },
    /// A backup: a copy of the node's durable store (records, coverage,
    /// durability marker) is kept as snapshot `id`.
    Snapshot {
        /// The node.
        node: usize,
        /// Names the snapshot.
        id: u32,
    },
    /// The node crashes, its durable store is replaced by snapshot `id`
    /// (taken of this node earlier), and it starts again.
    RestoreSnapshot {
        /// The node.
        node: usize,
        /// The snapshot.
        id: u32,
    },
    /// A node that has never run starts with a copy of `from`'s durable store
    /// (its permanent state included), then runs as a node of its own.
    StartClone {
        /// The new node.
        node: usize,
        /// The node whose data directory is copied.
        from: usize,
    },
    /// The node crashes and its store loses its last `writes` durable writes,
    /// data and coverage both (a damaged log cut at its first bad entry); the
    /// durability marker keeps its value. The node starts again.
    TruncateTail {
        /// The node.
        node: usize,
        /// How many of the last writes are lost.
        writes: usize,
    },
    /// The node crashes and its store loses the data of `count` held records
    /// but keeps their ids covered (the same frontier, a different digest).
    /// The node starts again.
    LoseData {
        /// The node.
        node: usize,
        /// How many records lose their data.
        count: usize,
    },
    /// The node's disk fails every write until the matching `DiskUp` (or the
    /// heal): its writes halt, its local revocations are refused.
    DiskDown {
        /// The node.
        node: usize,
    },
    /// The node's disk works again; the node resumes writes at its next
    /// recovery check.
    DiskUp {
        /// The node.
        node: usize,
    },
}

impl FaultAction {
    /// A short name of the kind of fault, for summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            FaultAction::Partition { .. } => "partition",
            FaultAction::Heal { .. } => "heal",
            FaultAction::Chaos { .. } => "chaos",
            FaultAction::Calm { .. } => "calm",
            FaultAction::Crash { .. } => "crash",
            FaultAction::Restart { .. } => "restart",
            FaultAction::ClockJump { .. } => "clock-jump",
            FaultAction::Start { .. } => "start",
            FaultAction::Snapshot { .. } => "snapshot",
            FaultAction::RestoreSnapshot { .. } => "restore-snapshot",
            FaultAction::StartClone { .. } => "start-clone",
            FaultAction::TruncateTail { .. } => "truncate-tail",
            FaultAction::LoseData { .. } => "lose-data",
            FaultAction::DiskDown { .. } => "disk-down",
            FaultAction::DiskUp { .. } => "disk-up",
        }
    }
}

/// A fault at a time.
#[derive(Clone, Debug, Serialize)]
pub struct FaultStep {
    /// When, ms from the start.
    pub at_ms: u64,
    /// What.
    pub action: FaultAction,
}

/// Everything a run depends on besides its seed's dice.
#[derive(Clone, Debug, Serialize)]
pub struct Params {
    /// The seed.
    pub seed: u64,
    /// The scenario's name.
    pub scenario: String,
    /// The region (index into [`REGIONS`]) of each node.
    pub node_regions: Vec<usize>,
    /// Nodes that only start at a `Start` or `StartClone` step (or the heal).
    pub late_joiners: Vec<usize>,
    /// Initial clock skew of each node, ms.
    pub skew_ms: Vec<i64>,
    /// The workload and fault phase, ms; then everything heals.
    pub duration_ms: u64,
    /// The workload starts after this, ms.
    pub warmup_ms: u64,
    /// The run goes on this long after convergence, ms.
    pub settle_ms: u64,
    /// Garbage collection period of every node, ms.
    pub gc_interval_ms: u64,
    /// The clients.
    pub workload: WorkloadParams,
    /// The engine.
    pub engine: EngineParams,
    /// Connection management.
    pub transport: TransportParams,
    /// The network.
    pub net: NetParams,
    /// The disks.
    pub disk: DiskParams,
    /// Chaos on every link for the whole fault phase.
    pub base_chaos: Chaos,
    /// Faults, in time order.
    pub faults: Vec<FaultStep>,
    /// A deliberate bug, if any.
    pub bug: Option<Bug>,
}

impl Params {
    /// How many nodes the world has.
    pub fn nodes(&self) -> usize {
        self.node_regions.len()
    }

    /// The distinct regions used, in order of first use.
    pub fn region_names(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for r in &self.node_regions {
            let name = REGIONS[*r].name;
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.engine;
        let w = &self.workload;
        writeln!(
            f,
            "seed {} scenario {}: {} nodes in {} regions [{}]{}",
            self.seed,
            self.scenario,
            self.nodes(),
            self.region_names().len(),
            self.region_names().join(", "),
            match self.bug {
                Some(b) => format!(" (bug injected: {})", b.name()),
                None => String::new(),
            }
        )?;
        writeln!(
            f,
            "  phase {:.1} s (warmup {:.1} s); {} revocations, {} checks; {:.0}% short-lived ({}-{} s); gc grace {} s every {} ms",
            self.duration_ms as f64 / 1e3,
            self.warmup_ms as f64 / 1e3,
            w.revocations,
            w.checks,
            w.short_lived * 100.0,
            w.short_life_s.0,
            w.short_life_s.1,
            e.gc_grace_s,
            self.gc_interval_ms,
        )?;
        writeln!(
            f,
            "  engine: anti-entropy {} ms, batch {} records / {} B, window {}, ack timeout {} ms, push grace {} ms",
            e.anti_entropy_ms,
            e.max_batch_records,
            e.max_batch_bytes,
            e.window,
            e.ack_timeout_ms,
            e.push_grace_ms
        )?;
        let t = &self.transport;
        writeln!(
            f,
            "  transport: idle {} ms, keep-alive {} ms, dial timeout {} ms, backoff {}-{} ms; net jitter {:.0}%, loss {:.1}%, {} Mbit/s",
            t.idle_timeout_ms,
            t.keep_alive_ms,
            t.dial_timeout_ms,
            t.backoff_min_ms,
            t.backoff_max_ms,
            self.net.jitter * 100.0,
            self.net.loss * 100.0,
            self.net.bandwidth_mbps
        )?;
        let c = &self.base_chaos;
        let max_skew = self.skew_ms.iter().map(|s| s.abs()).max().unwrap_or(0);
        writeln!(
            f,
            "  disk {}-{} µs, fail {:.1}%, read fail {:.1}%; chaos drop {:.1}% dup {:.1}% reorder {:.1}%; max skew {} ms",
            self.disk.min_us,
            self.disk.max_us,
            self.disk.fail_prob * 100.0,
            self.disk.read_fail_prob * 100.0,
            c.drop * 100.0,
            c.duplicate * 100.0,
            c.reorder * 100.0,
            max_skew
        )?;
        write!(f, "  faults: {}", fault_summary(&self.faults))
    }
}

fn fault_summary(steps: &[FaultStep]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for s in steps {
        let name = s.action.kind();
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(n, c)| format!("{n} x{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
