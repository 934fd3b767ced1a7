//! What happens to the world besides replication: clients revoke and check,
//! collectors collect, faults strike and everything heals (the end of a run
//! is in `ending.rs`).

use rand::Rng;
use veto_core::{Frontier, Revocation};
use veto_gossip::proto::{self, Message};

use crate::bound::{AtHeal, Bound};
use crate::params::{Bug, FaultAction};
use crate::sched::{Event, MS};
use crate::storage::Disk;
use crate::world::{Phase, World};

/// How far back a crash with the `lose-unsynced` bug loses writes.
const UNSYNCED_WINDOW: u64 = 200 * MS;

impl World {
    pub(crate) fn start_node(&mut self, i: usize) {
        let id = if self.p.bug == Some(Bug::ReuseSeqs) && self.nodes[i].incarnation > 0 {
            // The old behaviour: one permanent id, seqs continuing from what
            // the store holds.
            self.nodes[i].id
        } else {
            self.fresh_writer(i)
        };
        self.launch(i, id);
    }

    /// Starts node `i` under writer id `id`; the node reports what its
    /// durability marker says is missing.
    pub(crate) fn launch(&mut self, i: usize, id: veto_core::NodeId) {
        self.by_id.insert(id, i);
        if self.p.bug == Some(Bug::DropOrigin) && i == 1 {
            // The bug follows the second node's writer id of the day.
            self.nodes[0].store.drop_origin = Some(id);
        }
        let bug = self.p.bug;
        self.nodes[i].start(
            id,
            bug != Some(Bug::IgnoreMarker),
            bug != Some(Bug::NoStampFloor),
            &bug.map(Bug::node_faults).unwrap_or_default(),
        );
        let reported = self.nodes[i].missing_at_start;
        self.metrics.missing_reported += reported;
        self.oracle.started(self.now, i, reported);
        if self.log && reported > 0 {
            self.say(i, &format!("reports {reported} ids missing from its store"));
        }
        self.net.start(&mut self.q, self.now, i);
        self.rearm(i, false);
        if self.log {
            self.say(i, "starts");
        }
    }

    /// A writer id for node `i`'s next life: drawn from the seed, used by no
    /// node and covered by no store here.
    pub(crate) fn fresh_writer(&mut self, i: usize) -> veto_core::NodeId {
        // Production draws the same way, refusing only what its own store
        // covers; the world can refuse every id any node has used.
        let mut rng = self.nodes[i].rng.clone();
        let id = veto_node::fresh_writer(&mut rng, |id| {
            self.by_id.contains_key(&id)
                || self
                    .nodes
                    .iter()
                    .any(|n| n.store.covered().origin(id).is_some())
        });
        self.nodes[i].rng = rng;
        id
    }

    pub(crate) fn crash_node(&mut self, i: usize) {
        let Some(live) = self.nodes[i].crash() else {
            return;
        };
        self.metrics.crashes += 1;
        self.oracle.lost_unacked(&live.pending);
        if self.p.bug == Some(Bug::LoseUnsynced) {
            let since = self.now.saturating_sub(UNSYNCED_WINDOW);
            self.nodes[i].store.lose_writes_since(since);
        }
        self.net.crash(&mut self.q, self.now, i);
        if self.log {
            self.say(i, "crashes");
        }
    }

    /// Whether the fault plan takes a disk down (so writes may halt).
    pub(crate) fn halts_planned(&self) -> bool {
        self.p
            .faults
            .iter()
            .any(|s| matches!(s.action, FaultAction::DiskDown { .. }))
    }

    /// The live nodes, in order.
    fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].live.is_some())
            .collect()
    }

    fn pick_live(&mut self) -> Option<usize> {
        let live = self.live_nodes();
        if live.is_empty() {
            return None;
        }
        Some(live[self.workload.rng.gen_range(0..live.len())])
    }

    pub(crate) fn on_gc(&mut self, i: usize) {
        let now = self.now;
        self.q.push(
            now + self.p.gc_interval_ms.max(1) * MS,
            Event::Gc { node: i },
        );
        // Agreement can also come from time alone: a record one node still
        // holds and another rightly did not take back drops out of the
        // compared digests once it expires. Check again at every tick, not
        // only when data moves.
        self.check_converged();
        let Some(live) = self.nodes[i].live.as_ref() else {
            return;
        };
        if self.nodes[i].writes_fail() {
            // A prune is a write: it waits until writes resume.
            return;
        }
        // As in production: collect only by a clock most peers confirm (the
        // engine voids its check at once when the clock steps).
        let peers = self.nodes.len() - 1;
        let confirmed = veto_node::may_collect(&live.engine.clock_check(), peers, false).is_ok();
        if !confirmed && self.p.bug != Some(Bug::TrustLocalClock) {
            self.metrics.gc_paused += 1;
            return;
        }
        let local_secs = self.nodes[i].local_secs(now);
        self.max_clock_secs = self.max_clock_secs.max(local_secs);
        let cluster_secs = self.cluster_secs();
        // Production's collection step, over the simulated store; the index
        // forgets what was pruned as each batch goes.
        let node = &mut self.nodes[i];
        let mut pruned = Vec::new();
        let Some(live) = node.live.as_mut() else {
            return;
        };
        let mut disk = Disk::new(&mut node.store, now, self.p.bug);
        let Ok(_) =
            veto_node::collect_expired(&mut disk, local_secs, self.p.engine.gc_grace_s, |batch| {
                live.enforcer.forget(batch);
                pruned.extend_from_slice(batch);
            });
        if pruned.is_empty() {
            return;
        }
        self.trace.word(0x6c ^ (pruned.len() as u64) << 8);
        self.metrics.gc_pruned += pruned.len() as u64;
        if self.log {
            if let Some(live) = self.nodes[i].live.as_ref() {
                let what = format!(
                    "collects {} records; clock check {:?}",
                    pruned.len(),
                    live.engine.clock_check()
                );
                self.say(i, &what);
            }
        }
        let node = &self.nodes[i];
        let why = || {
            let check = node.live.as_ref().map(|l| l.engine.clock_check());
            let step = match node.last_step {
                Some((at, delta_ms)) => format!(
                    "its clock stepped by {delta_ms} ms {} ms earlier",
                    (now - at) / MS
                ),
                None => "its clock never stepped".into(),
            };
            format!("{step}; its clock check: {check:?}")
        };
        for r in &pruned {
            self.oracle
                .pruned(now, i, (local_secs, cluster_secs), r, &why);
        }
        self.check_converged();
    }

    /// The cluster's time, as its clocks tell it: the median of every node's
    /// clock reading now, in Unix seconds. `None` when no strict majority of
    /// the clocks reads within the tolerated offset of it: against a majority
    /// of wrong clocks no rule can tell which time is right (the design
    /// assumes most clocks are kept right), so collection is not judged then.
    pub(crate) fn cluster_secs(&self) -> Option<u64> {
        let mut readings: Vec<u64> = self.nodes.iter().map(|n| n.local_secs(self.now)).collect();
        readings.sort_unstable();
        let median = *readings.get(readings.len() / 2)?;
        let tolerance = self.oracle.offset_secs;
        let near = readings
            .iter()
            .filter(|r| r.abs_diff(median) <= tolerance)
            .count();
        (near * 2 > readings.len()).then_some(median)
    }

    pub(crate) fn on_revoke(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let size = (self.workload.request_size() as u64).min(self.revocations_left);
        self.revocations_left -= size;
        if self.revocations_left > 0 {
            let at = self.next_arrival(self.now, self.revocations_left);
            self.q.push(at, Event::Revoke);
        }
        if let Some(i) = self.pick_live() {
            self.revoke_at(i, size as usize);
        }
    }

    pub(crate) fn on_bulk_import(&mut self) {
        let Some(b) = self.p.workload.bulk_import else {
            return;
        };
        if self.nodes.get(b.node).is_some_and(|n| n.live.is_some()) {
            self.revoke_at(b.node, b.count);
        }
    }

    /// Node `i` revokes `count` records in one durable write.
    fn revoke_at(&mut self, i: usize, count: usize) {
        let now = self.now;
        if self.nodes[i].writes_fail() {
            // Writes are halted (or the disk fails this one): 503, nothing
            // acknowledged.
            self.metrics.revocations_refused += count as u64;
            if self.nodes[i].disk_down {
                self.halt(i);
            }
            return;
        }
        let local = self.nodes[i].local(now);
        let batch: Vec<Revocation> = (0..count)
            .map(|_| self.workload.revocation(local.as_secs()))
            .collect();
        let node = &mut self.nodes[i];
        let Some(live) = node.live.as_mut() else {
            return;
        };
        let max_offset = live.engine.config().max_clock_offset;
        if veto_node::may_set_cutoffs(&live.engine.clock_check(), &batch, max_offset).is_err() {
            // Production answers 503 clock_skew: nothing stored.
            self.metrics.revocations_refused += count as u64;
            return;
        }
        // Production numbers and stamps with the same code; its seqs are
        // taken once the write is durable, and here no accepted local write
        // fails, so they are taken at once.
        let records = live.writer.prepare(batch, live.engine.clock(), local);
        live.writer.commit(records.len());
        live.pending.extend(records.iter().map(|r| r.id));
        let early = live.faults.ack() == veto_node::Ack::BeforeDurable;
        for record in &records {
            let (id, stamp) = (record.id, record.hlc);
            // The store keeps the last local stamp and a restart starts the
            // clock above it (a restored backup or a cut log takes it back
            // with the records, and the node then knows no later one).
            let node = &mut self.nodes[i];
            let floor = node.last_stamp;
            node.last_stamp = floor.max(stamp);
            if stamp <= floor {
                let detail = format!(
                    "stamp {} is not above {}, the last stamp of this node's life or of its store",
                    stamp.0, floor.0
                );
                self.oracle
                    .violate(now, "stamp-regressed", Some(i), Some(id), detail);
            }
            let size = proto::encoded_len(&Message::Push {
                records: vec![record.clone()],
            });
            self.metrics.max_record_bytes = self.metrics.max_record_bytes.max(size);
            self.metrics.revocations += 1;
            self.oracle.created(now, i, record);
            if early {
                // The injected bug: answered before the disk has it.
                self.oracle.acked(now, self.nodes[i].ack_time(now), id);
                self.metrics.acked += 1;
            }
        }
        self.trace
            .word(0x7e ^ (i as u64) << 8 ^ (count as u64) << 32);
        let done = self.queue_disk_write(i, now);
        let incarnation = self.nodes[i].incarnation;
        self.q.push(
            done,
            Event::LocalDurable {
                node: i,
                incarnation,
                records,
            },
        );
    }

    pub(crate) fn on_check(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        self.checks_left = self.checks_left.saturating_sub(1);
        if self.checks_left > 0 {
            let at = self.next_arrival(self.now, self.checks_left);
            self.q.push(at, Event::Check);
        }
        let Some(i) = self.pick_live() else {
            return;
        };
        let now = self.now;
        let secs = self.nodes[i].local_secs(now);
        let order = &self.oracle.order;
        let target = if !order.is_empty() && self.workload.rng.gen_bool(0.7) {
            let recent = order.len().saturating_sub(200);
            let at = if self.workload.rng.gen_bool(0.5) {
                self.workload.rng.gen_range(recent..order.len())
            } else {
                self.workload.rng.gen_range(0..order.len())
            };
            self.oracle
                .records
                .get(&order[at])
                .map(|k| k.record.clone())
        } else {
            None
        };
        let spec = match &target {
            Some(r) => self.workload.probe(r),
            None => self.workload.random_check(secs),
        };
        let node = &self.nodes[i];
        let Some(live) = node.live.as_ref() else {
            return;
        };
        let revoked = self
            .oracle
            .check(now, i, &spec, live.enforcer.index(), &node.store);
        self.metrics.checks += 1;
        self.metrics.checks_revoked += u64::from(revoked);
        self.trace.word(0xc4 ^ u64::from(revoked));
    }

    pub(crate) fn on_fault(&mut self, index: usize) {
        if self.phase != Phase::Running {
            return;
        }
        let action = self.p.faults[index].action.clone();
        self.trace.word(0xfa ^ (index as u64) << 8);
        let now = self.now;
        if self.log {
            eprintln!("{:>12.3} ms fault {action:?}", now as f64 / MS as f64);
        }
        match action {
            FaultAction::Partition { id, links } => {
                self.net.partition(&mut self.q, now, id, links.edges())
            }
            FaultAction::Heal { id } => self.net.heal(&mut self.q, now, id),
            FaultAction::Chaos { id, links, chaos } => self.net.chaos(id, links.edges(), chaos),
            FaultAction::Calm { id } => self.net.calm(id),
            FaultAction::Crash { node } => self.crash_node(node),
            FaultAction::Restart { node } => {
                // Only a node that crashed restarts; one that never started
                // waits for its `Start`.
                if self.nodes[node].live.is_none() && self.nodes[node].incarnation > 0 {
                    self.metrics.restarts += 1;
                    self.start_node(node);
                }
            }
            FaultAction::ClockJump { node, delta_ms } => {
                let n = &mut self.nodes[node];
                n.skew += delta_ms * MS as i64;
                n.last_step = Some((now, delta_ms));
                n.timer_at = None;
                self.metrics.clock_jumps += 1;
                // A node sees its own clock step against its monotonic clock,
                // as the production driver does, and measures again.
                self.input(node, veto_gossip::engine::Input::ClockStepped);
                self.rearm(node, false);
            }
            FaultAction::Start { node } => {
                if self.nodes[node].live.is_none() && self.nodes[node].incarnation == 0 {
                    self.push_catch_up(node);
                    self.start_node(node);
                }
            }
            FaultAction::Snapshot { node, id } => self.snapshot(node, id),
            FaultAction::RestoreSnapshot { node, id } => self.restore_snapshot(node, id),
            FaultAction::StartClone { node, from } => self.start_clone(node, from),
            FaultAction::TruncateTail { node, writes } => self.truncate_tail(node, writes),
            FaultAction::LoseData { node, count } => self.lose_data(node, count),
            FaultAction::DiskDown { node } => self.nodes[node].disk_down = true,
            FaultAction::DiskUp { node } => self.nodes[node].disk_up(),
        }
    }

    pub(crate) fn on_heal(&mut self) {
        let now = self.now;
        self.phase = Phase::Healed;
        self.heal_at = Some(now);
        self.disk_failing = false;
        for n in &mut self.nodes {
            n.store.read_fail_prob = 0.0;
            n.disk_up();
        }
        self.net.heal_all(&mut self.q, now);
        for i in 0..self.nodes.len() {
            if self.nodes[i].live.is_none() {
                if self.nodes[i].incarnation > 0 {
                    self.metrics.restarts += 1;
                }
                self.start_node(i);
            }
        }
        let mut union = Frontier::new();
        for n in &self.nodes {
            union.union_with(n.store.covered());
        }
        let pending: u64 = self
            .nodes
            .iter()
            .filter_map(|n| n.live.as_ref())
            .map(|l| l.pending.len() as u64)
            .sum();
        let lag = self
            .nodes
            .iter()
            .map(|n| union.lag_of(n.store.covered()))
            .max()
            .unwrap_or(0);
        let damaged = self.oracle.damaged_count();
        let held_windows = if damaged == 0 {
            0
        } else {
            let most = self
                .nodes
                .iter()
                .map(|n| n.store.max_held_ranges())
                .max()
                .unwrap_or(0);
            most.div_ceil(veto_gossip::proto::MAX_HELD_RANGES).max(1) as u64
        };
        let at_heal = AtHeal {
            max_rtt: self.net.max_rtt(),
            backlog: lag + pending + damaged,
            halts: self.metrics.halts > 0 || self.halts_planned(),
            recovering: self.nodes.iter().any(|n| n.live.is_some() && n.halted),
            held_windows,
            record_bytes: self.metrics.max_record_bytes.max(64),
            chaos: self.chaos,
            disk_backlog: self
                .nodes
                .iter()
                .map(|n| n.disk_free.saturating_sub(now))
                .max()
                .unwrap_or(0),
        };
        let (bound, total) = Bound::derive(&self.p, &at_heal);
        self.bound = Some(bound);
        self.receipts_due = Some(now + total);
        self.q.push(now + total, Event::Deadline);
        self.check_converged();
    }
}
