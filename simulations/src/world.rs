//! The simulated world: nodes, the network, the clients and the faults, run
//! off one event queue in simulated time.
//!
//! This file holds the loop and the glue between the engine and the world:
//! feeding inputs in at each node's own clock, and acting on its outputs
//! (frames onto the network, writes onto the disk, closed connections).
//! `persist.rs` holds the write path, `actions.rs` the clients, the faults,
//! the heal and the end, `disk.rs` the storage faults.

use std::collections::BTreeMap;

use rand::Rng;
use veto_core::{Frontier, NodeId, Record};
use veto_gossip::engine::{drain, EngineEvent, Frame, Input, Lane, PeerKey, PersistId, Runtime};
use veto_gossip::proto::{self, MessageKind, FRAME_HEADER_BYTES};

use crate::bound::Bound;
use crate::invariants::Oracle;
use crate::metrics::{close_class, Metrics};
use crate::net::{Net, NetEffect};
use crate::node::{engine_config, SimNode};
use crate::params::{Bug, FaultAction, Params};
use crate::regions::REGIONS;
use crate::rng::{mix, stream, SimRng, Stream};
use crate::sched::{Event, Queue, Time, Trace, MS};
use crate::store::{Image, Store};
use crate::workload::Workload;

/// Where the run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Workload and faults.
    Running,
    /// Everything healed; waiting for convergence.
    Healed,
}

/// A node that joined late, and how long it took to catch up.
pub(crate) struct CatchUp {
    pub(crate) node: usize,
    pub(crate) started_at: Time,
    pub(crate) target: Frontier,
    pub(crate) target_count: u64,
    pub(crate) done_at: Option<Time>,
}

pub(crate) struct World {
    pub(crate) p: Params,
    pub(crate) now: Time,
    pub(crate) q: Queue,
    pub(crate) trace: Trace,
    pub(crate) log: bool,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) by_id: BTreeMap<NodeId, usize>,
    pub(crate) net: Net,
    pub(crate) oracle: Oracle,
    pub(crate) metrics: Metrics,
    pub(crate) workload: Workload,
    pub(crate) disk_rng: SimRng,
    pub(crate) phase: Phase,
    pub(crate) heal_at: Option<Time>,
    pub(crate) converged_at: Option<Time>,
    /// When every receipt must be complete: the heal plus the convergence
    /// bound.
    pub(crate) receipts_due: Option<Time>,
    /// Per node, how far its reports were checked (see `enforcement.rs`).
    pub(crate) checked: Vec<crate::enforcement::Checked>,
    pub(crate) bound: Option<Bound>,
    pub(crate) events: u64,
    pub(crate) max_clock_secs: u64,
    /// Whether the transport ever breaks its contract in this run.
    pub(crate) chaos: bool,
    pub(crate) disk_failing: bool,
    pub(crate) catch_up: Vec<CatchUp>,
    /// Backups of nodes' durable stores, by snapshot id: (node, image).
    pub(crate) snapshots: BTreeMap<u32, (usize, Image)>,
    pub(crate) revocations_left: u64,
    pub(crate) checks_left: u64,
    pub(crate) ended: bool,
    effects: Vec<NetEffect>,
}

impl World {
    pub(crate) fn new(p: Params, log: bool) -> World {
        let seed = p.seed;
        let n = p.nodes();
        let mut ids = stream(seed, Stream::Identity);
        let mut nodes = Vec::with_capacity(n);
        let mut by_id = BTreeMap::new();
        let mut per_region: BTreeMap<usize, usize> = BTreeMap::new();
        for i in 0..n {
            let mut id = NodeId::new(ids.gen());
            while by_id.contains_key(&id) {
                id = NodeId::new(ids.gen());
            }
            by_id.insert(id, i);
            let region = p.node_regions[i];
            let k = per_region.entry(region).or_default();
            *k += 1;
            let name = format!("{}/{}", REGIONS[region].name, k);
            let mut store = Store::new(mix(seed ^ (i as u64) << 20));
            store.read_fail_prob = p.disk.read_fail_prob;
            if p.bug == Some(Bug::LoseUnsynced) {
                store.journal = Some(Vec::new());
            }
            nodes.push(SimNode {
                id,
                config: engine_config(id, &name, REGIONS[region].name, &p.engine),
                name,
                store,
                live: None,
                skew: p.skew_ms.get(i).copied().unwrap_or(0) * MS as i64,
                incarnation: 0,
                rng: stream(seed, Stream::Engine(i)),
                disk_free: 0,
                next_flush: None,
                last_stamp: veto_core::Hlc::default(),
                timer_at: None,
                disk_down: false,
                halted: false,
                recovery_pending: false,
                marker_checked: false,
                missing_at_start: 0,
                last_step: None,
                max_wall: std::time::Duration::ZERO,
            });
        }
        let names = nodes.iter().map(|n| n.name.clone()).collect();
        let chaos = {
            let hostile =
                |c: &crate::params::Chaos| c.drop > 0.0 || c.duplicate > 0.0 || c.reorder > 0.0;
            hostile(&p.base_chaos)
                || p.faults.iter().any(
                    |s| matches!(&s.action, FaultAction::Chaos { chaos, .. } if hostile(chaos)),
                )
        };
        let mut w = World {
            net: Net::new(&p, stream(seed, Stream::Net)),
            oracle: Oracle::new(
                seed,
                p.engine.gc_grace_s,
                p.engine.max_clock_offset_ms,
                names,
            ),
            workload: Workload::new(p.workload.clone(), stream(seed, Stream::Workload)),
            disk_rng: stream(seed, Stream::Disk),
            disk_failing: p.disk.fail_prob > 0.0,
            p,
            now: 0,
            q: Queue::default(),
            trace: Trace::default(),
            log,
            nodes,
            by_id,
            metrics: Metrics::default(),
            phase: Phase::Running,
            heal_at: None,
            converged_at: None,
            receipts_due: None,
            checked: Vec::new(),
            bound: None,
            events: 0,
            max_clock_secs: 0,
            chaos,
            catch_up: Vec::new(),
            snapshots: BTreeMap::new(),
            revocations_left: 0,
            checks_left: 0,
            ended: false,
            effects: Vec::new(),
        };
        w.schedule_start();
        w
    }

    fn schedule_start(&mut self) {
        let n = self.nodes.len();
        for i in 0..n {
            if !self.p.late_joiners.contains(&i) {
                self.start_node(i);
            }
            let offset = self.disk_rng.gen_range(0..self.p.gc_interval_ms.max(1)) * MS;
            self.q.push(offset, Event::Gc { node: i });
        }
        let warmup = self.p.warmup_ms * MS;
        self.revocations_left = self.p.workload.revocations;
        self.checks_left = self.p.workload.checks;
        if self.revocations_left > 0 {
            let first = self.next_arrival(warmup, self.revocations_left);
            self.q.push(first, Event::Revoke);
        }
        if self.checks_left > 0 {
            let first = self.next_arrival(warmup, self.checks_left);
            self.q.push(first, Event::Check);
        }
        if let Some(b) = self.p.workload.bulk_import {
            self.q.push(b.at_ms * MS, Event::BulkImport);
        }
        for (index, step) in self.p.faults.iter().enumerate() {
            self.q.push(step.at_ms * MS, Event::Fault { index });
        }
        self.q.push(self.p.duration_ms * MS, Event::Heal);
    }

    /// When the next of `left` client requests spread over the rest of the
    /// workload phase comes.
    pub(crate) fn next_arrival(&mut self, now: Time, left: u64) -> Time {
        let end = self.p.duration_ms * MS;
        crate::rng::next_arrival(&mut self.workload.rng, now, end, left)
    }

    /// Runs to the end.
    pub(crate) fn run(&mut self) {
        while let Some((at, event)) = self.q.pop() {
            self.now = at;
            self.events += 1;
            self.trace.word(at);
            self.dispatch(event);
            if self.ended {
                break;
            }
        }
        if !self.ended {
            // The queue ran dry before the end: should not happen, as GC
            // timers always tick; audit anyway.
            self.end();
        }
    }

    fn dispatch(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Arrive {
                conn,
                dir,
                lane,
                seq,
                frame,
            } => {
                self.trace
                    .word(conn << 2 | u64::from(dir) << 1 | u64::from(lane));
                let mut fx = std::mem::take(&mut self.effects);
                self.net
                    .arrive(conn, usize::from(dir), lane, seq, frame, &mut fx);
                self.apply(fx);
            }
            Event::SideCheck { conn, side } => {
                self.trace.word(0x51 ^ conn << 1 | u64::from(side));
                let mut fx = std::mem::take(&mut self.effects);
                self.net
                    .side_check(&mut self.q, now, conn, usize::from(side), &mut fx);
                self.apply(fx);
            }
            Event::Dial { pair, token } => {
                self.trace.word(0xd1 ^ (pair as u64) << 8);
                self.net.dial(&mut self.q, now, pair, token);
            }
            Event::ConnUp { pair, token } => {
                self.trace.word(0xc0 ^ (pair as u64) << 8);
                let mut fx = std::mem::take(&mut self.effects);
                self.net.conn_up(&mut self.q, now, pair, token, &mut fx);
                self.apply(fx);
            }
            Event::Timer { node, incarnation } => self.on_timer(node, incarnation),
            Event::PersistDone {
                node,
                incarnation,
                id,
                records,
                cover,
                restore,
                fail,
            } => self.on_persisted(node, incarnation, id, records, cover, restore, fail),
            Event::LocalDurable {
                node,
                incarnation,
                records,
            } => self.on_local_durable(node, incarnation, records),
            Event::Gc { node } => self.on_gc(node),
            Event::Recover { node, incarnation } => self.on_recover(node, incarnation),
            Event::Revoke => self.on_revoke(),
            Event::BulkImport => self.on_bulk_import(),
            Event::Check => self.on_check(),
            Event::Fault { index } => self.on_fault(index),
            Event::Heal => self.on_heal(),
            Event::Deadline => self.on_deadline(),
            Event::End => self.end(),
        }
    }

    /// Hands network effects to the engines.
    fn apply(&mut self, mut fx: Vec<NetEffect>) {
        for effect in fx.drain(..) {
            let node = match &effect {
                NetEffect::Connected { node, .. }
                | NetEffect::Lost { node, .. }
                | NetEffect::Deliver { node, .. }
                | NetEffect::DeliverDatagram { node, .. } => *node,
            };
            if self.log {
                let what = match &effect {
                    NetEffect::Connected { key, .. } => format!("connected {key:?}"),
                    NetEffect::Lost { key, .. } => format!("lost {key:?}"),
                    NetEffect::Deliver { key, frame, .. } => {
                        let kind = proto::decode(frame).map_or("undecodable", |m| m.kind());
                        format!("receives {kind} ({} B) on {key:?}", frame.len())
                    }
                    NetEffect::DeliverDatagram { key, frame, .. } => {
                        let kind = proto::decode(frame).map_or("undecodable", |m| m.kind());
                        format!("receives {kind} datagram ({} B) on {key:?}", frame.len())
                    }
                };
                self.say(node, &what);
            }
            match &effect {
                NetEffect::Connected { key, .. } => self.input(node, Input::Connected(*key)),
                NetEffect::Lost { key, .. } => self.input(node, Input::Lost(*key)),
                NetEffect::Deliver { key, frame, .. } => self.input(
                    node,
                    Input::Frame {
                        peer: *key,
                        bytes: frame,
                    },
                ),
                NetEffect::DeliverDatagram { key, frame, .. } => self.input(
                    node,
                    Input::Datagram {
                        peer: *key,
                        bytes: frame,
                    },
                ),
            }
        }
        self.effects = fx;
    }

    pub(crate) fn say(&self, node: usize, what: &str) {
        eprintln!(
            "{:>12.3} ms {:<18} {what}",
            self.now as f64 / MS as f64,
            self.nodes[node].name
        );
    }

    /// Gives node `i`'s engine an input at the node's own clock, then acts on
    /// its outputs and re-arms its timer. Nothing happens if the node is down.
    pub(crate) fn input(&mut self, i: usize, input: Input<'_>) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let local = node.clocks(now);
        node.max_wall = node.max_wall.max(local.wall);
        let Some(live) = node.live.as_mut() else {
            return;
        };
        live.engine.handle(local, input, &mut node.rng, &node.store);
        self.drain(i);
        self.rearm(i, false);
    }

    fn on_timer(&mut self, i: usize, incarnation: u64) {
        let node = &mut self.nodes[i];
        if node.incarnation != incarnation || node.timer_at != Some(self.now) {
            return;
        }
        node.timer_at = None;
        self.trace.word(0x71 ^ (i as u64) << 8);
        let now = self.now;
        let node = &mut self.nodes[i];
        let local = node.clocks(now);
        node.max_wall = node.max_wall.max(local.wall);
        let Some(live) = node.live.as_mut() else {
            return;
        };
        live.engine
            .handle(local, Input::Tick, &mut node.rng, &node.store);
        self.drain(i);
        self.rearm(i, true);
    }

    /// Schedules node `i`'s engine timer at its next timeout.
    pub(crate) fn rearm(&mut self, i: usize, after_tick: bool) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let Some(live) = node.live.as_ref() else {
            return;
        };
        let Some(due) = live.engine.next_timeout() else {
            node.timer_at = None;
            return;
        };
        let due = due.as_nanos().min(u128::from(Time::MAX)) as Time;
        let mut at = due.max(now);
        if after_tick && due <= now {
            // A tick must handle everything due; asking to be woken at once
            // again would make a driver spin.
            at = now + MS;
            let detail =
                format!("after a tick the engine asks to be woken at {due} ns, not later than now");
            self.oracle
                .violate(now, "timer-spin", Some(i), None, detail);
        }
        let node = &mut self.nodes[i];
        if node.timer_at != Some(at) {
            node.timer_at = Some(at);
            let incarnation = node.incarnation;
            self.q.push(
                at,
                Event::Timer {
                    node: i,
                    incarnation,
                },
            );
        }
    }

    /// A node advertises only what it holds durably: every id in the
    /// frontier its engine sends is covered by its store (held, or covered
    /// without data by a durable write). Peers stop sending what a node
    /// advertises, so an id advertised too soon is one a crash can lose for
    /// good there.
    fn check_advertised(&mut self, i: usize) {
        let node = &self.nodes[i];
        let Some(live) = node.live.as_ref() else {
            return;
        };
        let early = live.engine.frontier().missing_in(node.store.covered());
        let Some((origin, ranges)) = early.into_iter().find(|(_, r)| !r.is_empty()) else {
            return;
        };
        let seq = *ranges[0].start();
        let detail = format!(
            "advertises {} ids of origin {origin} that its store does not hold durably",
            ranges.iter().map(|r| r.end() - r.start() + 1).sum::<u64>()
        );
        let id = veto_core::RecordId { origin, seq };
        self.oracle.violate(
            self.now,
            "advertised-not-durable",
            Some(i),
            Some(id),
            detail,
        );
    }

    /// Acts on every output node `i`'s engine has queued.
    fn drain(&mut self, i: usize) {
        drain(
            |at: &mut At| at.world.nodes[at.i].live.as_mut()?.engine.poll_output(),
            &mut At { world: self, i },
        );
    }
}

/// Node `i` of the world, as the runtime its engine's outputs go to.
struct At<'a> {
    world: &'a mut World,
    i: usize,
}

impl Runtime for At<'_> {
    fn send(&mut self, peer: PeerKey, frame: Frame, lane: Lane, kind: MessageKind) {
        let w = &mut *self.world;
        // A digest advertises the frontier as much as a frontier does.
        let round = matches!(kind, MessageKind::Frontier | MessageKind::Digest);
        if round {
            w.check_advertised(self.i);
        }
        if round || kind == MessageKind::Reports {
            w.check_reports(self.i);
        }
        if round {
            w.metrics.report_bytes += crate::metrics::report_bytes(kind, &frame) as u64;
        }
        w.metrics.sent(kind, frame.len() + FRAME_HEADER_BYTES);
        w.trace.bytes(&frame);
        if w.log {
            w.say(
                self.i,
                &format!("send {} ({} B) on {peer:?}", kind.as_str(), frame.len()),
            );
        }
        let lane = match lane {
            Lane::Urgent => 0,
            Lane::Bulk => 1,
            Lane::Datagram => crate::net::DATAGRAM_LANE,
        };
        // The simulated network keeps a copy per packet, as a real one would
        // put the bytes on the wire per peer.
        w.net.send(&mut w.q, w.now, peer, lane, frame.to_vec());
    }

    fn persist(
        &mut self,
        id: PersistId,
        records: Vec<Record>,
        cover: Frontier,
        restore: Vec<Record>,
    ) {
        self.world.persist(self.i, id, records, cover, restore);
    }

    fn close(&mut self, peer: PeerKey, reason: String) {
        let w = &mut *self.world;
        let (class, allowed) = close_class(&reason);
        w.metrics.closed(class);
        w.trace.word(0xc1 ^ peer.0);
        if w.log {
            w.say(self.i, &format!("closes {peer:?}: {reason}"));
        }
        if !allowed && !w.chaos {
            let detail = format!("closed a connection over a faithful transport: {reason}");
            w.oracle
                .violate(w.now, "protocol-violation", Some(self.i), None, detail);
        }
        w.net.engine_close(&mut w.q, w.now, peer);
    }

    fn event(&mut self, event: EngineEvent) {
        let w = &mut *self.world;
        match event {
            EngineEvent::Unencodable { kind, error, .. } => {
                let detail = format!(
                    "the engine built a {} message that does not encode: {error}",
                    kind.as_str()
                );
                w.oracle
                    .violate(w.now, "unencodable", Some(self.i), None, detail);
            }
            e => w.metrics.event(&e),
        }
    }
}
