//! What a run reports: its verdict, propagation latency, convergence, traffic;
//! as a human-readable table or as JSON.

use std::fmt;

use serde::Serialize;

use veto_gossip::proto::MessageKind;

use crate::bound::Bound;
use crate::invariants::Violation;
use crate::params::Params;
use crate::sched::{Time, MS};
use crate::world::World;

/// Propagation latency: from a revocation's request at its origin until the
/// record is durable at another node, in simulated time.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Propagation {
    /// (record, receiving node) samples.
    pub samples: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Median of latency divided by the pair's one-way network latency.
    pub ratio_p50: f64,
    /// 99th percentile of that ratio.
    pub ratio_p99: f64,
    /// Maximum of that ratio.
    pub ratio_max: f64,
    /// The largest one-way latency between two nodes, ms (for scale).
    pub max_one_way_ms: f64,
}

/// Convergence after the heal.
#[derive(Clone, Debug, Serialize)]
pub struct Convergence {
    /// When everything healed, ms.
    pub heal_at_ms: f64,
    /// How long after the heal all nodes agreed, ms; `None` if they did not
    /// within the bound.
    pub after_heal_ms: Option<f64>,
    /// The bound and its terms.
    pub bound: Option<Bound>,
}

/// Messages and bytes of one kind.
#[derive(Clone, Debug, Serialize)]
pub struct KindTraffic {
    /// The message kind.
    pub kind: &'static str,
    /// How many were sent.
    pub messages: u64,
    /// Their bytes, with the 4-byte frame header.
    pub bytes: u64,
}

/// Traffic over the whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Traffic {
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent (frames, with headers).
    pub bytes: u64,
    /// Messages per acknowledged revocation.
    pub messages_per_revocation: f64,
    /// Bytes per acknowledged revocation.
    pub bytes_per_revocation: f64,
    /// Push messages per acknowledged revocation.
    pub pushes_per_revocation: f64,
    /// By message kind.
    pub by_kind: Vec<KindTraffic>,
    /// Bytes of frontiers spent telling who holds what (their reports; the
    /// prompt `Reports` messages are a kind of their own).
    pub report_bytes: u64,
    /// Those bytes per frontier sent (one per node and peer and
    /// anti-entropy round).
    pub report_bytes_per_frontier: f64,
}

/// A node that joined late and caught up with the backlog.
#[derive(Clone, Debug, Serialize)]
pub struct CatchUpReport {
    /// The node.
    pub node: String,
    /// Acknowledged records when it joined.
    pub records: u64,
    /// Time from its start until it covered all of them, ms.
    pub ms: Option<f64>,
}

/// Counters of what happened.
#[derive(Clone, Debug, Serialize)]
pub struct Happenings {
    /// Records received new by push / by repair.
    pub new_by_push: u64,
    /// Records received new by anti-entropy repair.
    pub new_by_repair: u64,
    /// Received records already held.
    pub duplicates: u64,
    /// Duplicates per new record received (by push or by repair).
    pub duplicates_per_new: f64,
    /// Datagram copies of pushes that came after their record (not counted
    /// in `duplicates`).
    pub echo_copies: u64,
    /// Received records already past expiry.
    pub expired_on_receipt: u64,
    /// Seqs covered because a peer had collected them.
    pub cleared: u64,
    /// Records collected by garbage collection.
    pub gc_pruned: u64,
    /// Stamps beyond the tolerated clock offset.
    pub clock_ahead: u64,
    /// Backlog batches that timed out.
    pub batches_timed_out: u64,
    /// Persist requests that failed.
    pub persist_failures: u64,
    /// Reads for peers that failed.
    pub read_failures: u64,
    /// Crashes and restarts.
    pub crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Clock steps.
    pub clock_jumps: u64,
    /// Restored backups, clones, cut logs and data losses.
    pub disk_faults: u64,
    /// Times a node halted writes after a failed write.
    pub writes_halted: u64,
    /// Times a node resumed writes.
    pub writes_resumed: u64,
    /// Records of local revocations refused (503) while writes were halted.
    pub revocations_refused: u64,
    /// Ids reported missing by nodes at start (their durability marker said
    /// they had covered more), summed over starts.
    pub missing_reported: u64,
    /// Ids still reported missing at the end, over all nodes: lost for good.
    pub missing_at_end: u64,
    /// Connections made.
    pub connections: u64,
    /// Connection sides that went away.
    pub disconnections: u64,
    /// Failed dials.
    pub dial_failures: u64,
    /// Packets retransmitted after a loss.
    pub retransmissions: u64,
    /// Messages dropped for good, duplicated, reordered (chaos).
    pub chaos_dropped: u64,
    /// Messages duplicated by chaos.
    pub chaos_duplicated: u64,
    /// Messages reordered by chaos.
    pub chaos_reordered: u64,
    /// Engine-initiated closes by reason.
    pub closes: Vec<(String, u64)>,
}

/// The outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// The scenario.
    pub scenario: String,
    /// The parameters, in one paragraph.
    pub params: String,
    /// The parameters in full, the fault plan included.
    pub world: Params,
    /// Whether no invariant broke.
    pub passed: bool,
    /// The first violations (at most 50).
    pub violations: Vec<Violation>,
    /// How many violations in all.
    pub violation_count: u64,
    /// How many of each invariant.
    pub violations_by_invariant: Vec<(String, u64)>,
    /// Hash of the whole event trace; equal hashes mean identical runs.
    pub trace_hash: String,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end, ms.
    pub sim_ms: f64,
    /// Wall-clock time of the run, ms (not part of the trace).
    pub wall_ms: f64,
    /// Nodes.
    pub nodes: usize,
    /// Records revoked.
    pub revocations: u64,
    /// Records acknowledged (durable at their origin).
    pub acknowledged: u64,
    /// Checks answered.
    pub checks: u64,
    /// Checks answered "revoked".
    pub checks_revoked: u64,
    /// Propagation latency.
    pub propagation: Propagation,
    /// Convergence.
    pub convergence: Convergence,
    /// Traffic.
    pub traffic: Traffic,
    /// Late joiners.
    pub catch_up: Vec<CatchUpReport>,
    /// Counters.
    pub happenings: Happenings,
}

fn ms(t: Time) -> f64 {
    t as f64 / MS as f64
}

/// The value at quantile `q` of sorted values.
pub(crate) fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl RunReport {
    pub(crate) fn build(w: &World, wall_ms: f64) -> RunReport {
        let m = &w.metrics;
        let mut lat: Vec<Time> = m.latency.iter().map(|(l, _)| *l).collect();
        lat.sort_unstable();
        let mut ratio: Vec<f64> = m
            .latency
            .iter()
            .map(|(l, base)| *l as f64 / (*base).max(1) as f64)
            .collect();
        ratio.sort_by(f64::total_cmp);
        let max_one_way = (0..w.nodes.len())
            .flat_map(|a| (0..w.nodes.len()).map(move |b| (a, b)))
            .map(|(a, b)| w.net.one_way(a, b))
            .max()
            .unwrap_or(0);
        let propagation = Propagation {
            samples: lat.len(),
            p50_ms: ms(quantile(&lat, 0.5)),
            p99_ms: ms(quantile(&lat, 0.99)),
            max_ms: ms(lat.last().copied().unwrap_or(0)),
            ratio_p50: quantile(&ratio, 0.5),
            ratio_p99: quantile(&ratio, 0.99),
            ratio_max: ratio.last().copied().unwrap_or(0.0),
            max_one_way_ms: ms(max_one_way),
        };
        let heal = w.heal_at.unwrap_or(0);
        let convergence = Convergence {
            heal_at_ms: ms(heal),
            after_heal_ms: w.converged_at.map(|c| ms(c - heal)),
            bound: w.bound.clone(),
        };
        let messages: u64 = m.messages.iter().sum();
        let bytes: u64 = m.bytes.iter().sum();
        let acked = m.acked.max(1) as f64;
        let traffic = Traffic {
            messages,
            bytes,
            messages_per_revocation: messages as f64 / acked,
            bytes_per_revocation: bytes as f64 / acked,
            pushes_per_revocation: m.messages[3] as f64 / acked,
            report_bytes: m.report_bytes,
            report_bytes_per_frontier: m.report_bytes as f64
                / m.messages[MessageKind::Frontier.index()].max(1) as f64,
            by_kind: MessageKind::ALL
                .iter()
                .enumerate()
                .map(|(k, kind)| KindTraffic {
                    kind: kind.as_str(),
                    messages: m.messages[k],
                    bytes: m.bytes[k],
                })
                .collect(),
        };
        let catch_up = w
            .catch_up
            .iter()
            .map(|c| CatchUpReport {
                node: w.nodes[c.node].name.clone(),
                records: c.target_count,
                ms: c.done_at.map(|d| ms(d - c.started_at)),
            })
            .collect();
        let ns = &w.net.stats;
        let happenings = Happenings {
            new_by_push: m.new_by_push,
            new_by_repair: m.new_by_repair,
            duplicates: m.duplicates,
            duplicates_per_new: m.duplicates as f64
                / (m.new_by_push + m.new_by_repair).max(1) as f64,
            echo_copies: m.echo_copies,
            expired_on_receipt: m.expired_on_receipt,
            cleared: m.cleared,
            gc_pruned: m.gc_pruned,
            clock_ahead: m.clock_ahead,
            batches_timed_out: m.batches_timed_out,
            persist_failures: m.persist_failures,
            read_failures: w.nodes.iter().map(|n| n.store.read_failures.get()).sum(),
            crashes: m.crashes,
            restarts: m.restarts,
            clock_jumps: m.clock_jumps,
            disk_faults: m.disk_faults,
            writes_halted: m.halts,
            writes_resumed: m.recoveries,
            revocations_refused: m.revocations_refused,
            missing_reported: m.missing_reported,
            missing_at_end: w.nodes.iter().map(|n| n.missing()).sum(),
            connections: ns.connections,
            disconnections: ns.disconnections,
            dial_failures: ns.dial_failures,
            retransmissions: ns.retransmissions,
            chaos_dropped: ns.dropped,
            chaos_duplicated: ns.duplicated,
            chaos_reordered: ns.reordered,
            closes: m.closes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        };
        RunReport {
            seed: w.p.seed,
            scenario: w.p.scenario.clone(),
            params: w.p.to_string(),
            world: w.p.clone(),
            passed: w.oracle.violation_count == 0,
            violations: w.oracle.violations.clone(),
            violation_count: w.oracle.violation_count,
            violations_by_invariant: w
                .oracle
                .by_invariant
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            trace_hash: format!("{:016x}", w.trace.value()),
            events: w.events,
            sim_ms: ms(w.now),
            wall_ms,
            nodes: w.nodes.len(),
            revocations: m.revocations,
            acknowledged: m.acked,
            checks: m.checks,
            checks_revoked: m.checks_revoked,
            propagation,
            convergence,
            traffic,
            catch_up,
            happenings,
        }
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.params)?;
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        writeln!(
            f,
            "{verdict}  seed {}  scenario {}  trace {}  {} events  {:.1} s simulated in {:.0} ms",
            self.seed,
            self.scenario,
            self.trace_hash,
            self.events,
            self.sim_ms / 1e3,
            self.wall_ms
        )?;
        let p = &self.propagation;
        let c = &self.convergence;
        let t = &self.traffic;
        let h = &self.happenings;
        let converged = match c.after_heal_ms {
            Some(x) => format!("{x:.0} ms"),
            None => "never".into(),
        };
        let bound = c.bound.as_ref().map_or(0.0, |b| b.total_ms);
        let rows: Vec<(&str, String)> = vec![
            ("revocations", format!("{} made, {} acknowledged; {} checks, {} revoked", self.revocations, self.acknowledged, self.checks, self.checks_revoked)),
            ("propagation", format!("p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} samples)", p.p50_ms, p.p99_ms, p.max_ms, p.samples)),
            ("  / one-way", format!("p50 {:.2}x  p99 {:.2}x  max {:.1}x  (largest one-way {:.1} ms)", p.ratio_p50, p.ratio_p99, p.ratio_max, p.max_one_way_ms)),
            ("convergence", format!("{converged} after the heal at {:.1} s (bound {bound:.0} ms)", c.heal_at_ms / 1e3)),
            ("traffic", format!("{} messages, {} bytes; per revocation {:.1} messages ({:.1} pushes), {:.0} bytes", t.messages, t.bytes, t.messages_per_revocation, t.pushes_per_revocation, t.bytes_per_revocation)),
            ("reports", format!("in frontiers {} bytes ({:.1}% of all), {:.1} bytes per frontier; prompt Reports {} bytes ({:.1}% of all)", t.report_bytes, 100.0 * t.report_bytes as f64 / t.bytes.max(1) as f64, t.report_bytes_per_frontier, t.by_kind[MessageKind::Reports.index()].bytes, 100.0 * t.by_kind[MessageKind::Reports.index()].bytes as f64 / t.bytes.max(1) as f64)),
            ("by kind", t.by_kind.iter().map(|k| format!("{} {}/{}B", k.kind, k.messages, k.bytes)).collect::<Vec<_>>().join("  ")),
            ("records in", format!("{} by push, {} by repair, {} duplicates ({:.3} per new record), {} datagram copies after their record, {} expired on receipt, {} cleared, {} collected", h.new_by_push, h.new_by_repair, h.duplicates, h.duplicates_per_new, h.echo_copies, h.expired_on_receipt, h.cleared, h.gc_pruned)),
            ("faults", format!("{} crashes, {} restarts, {} clock jumps, {} clock-ahead stamps, {} persist / {} read failures, {} batch timeouts", h.crashes, h.restarts, h.clock_jumps, h.clock_ahead, h.persist_failures, h.read_failures, h.batches_timed_out)),
            ("storage", format!("{} disk faults, {} halts, {} resumes, {} revocations refused; {} ids reported missing at start, {} at the end", h.disk_faults, h.writes_halted, h.writes_resumed, h.revocations_refused, h.missing_reported, h.missing_at_end)),
            ("network", format!("{} connections, {} sides lost, {} failed dials, {} retransmissions; chaos {} dropped {} duplicated {} reordered", h.connections, h.disconnections, h.dial_failures, h.retransmissions, h.chaos_dropped, h.chaos_duplicated, h.chaos_reordered)),
        ];
        for (k, v) in rows {
            writeln!(f, "  {k:<12} {v}")?;
        }
        if !h.closes.is_empty() {
            let closes: Vec<String> = h.closes.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            writeln!(f, "  {:<12} {}", "closes", closes.join(", "))?;
        }
        for c in &self.catch_up {
            let took = c.ms.map_or("never".into(), |x| format!("{x:.0} ms"));
            writeln!(
                f,
                "  {:<12} {} caught up with {} records in {took}",
                "catch-up", c.node, c.records
            )?;
        }
        for v in &self.violations {
            writeln!(f, "  VIOLATION {v}")?;
        }
        if self.violation_count > self.violations.len() as u64 {
            let all: Vec<String> = self
                .violations_by_invariant
                .iter()
                .map(|(k, v)| format!("{k} x{v}"))
                .collect();
            writeln!(
                f,
                "  ... {} violations in all: {}",
                self.violation_count,
                all.join(", ")
            )?;
        }
        Ok(())
    }
}
