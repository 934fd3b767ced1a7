//! One simulated veto node: the real replication engine and lookup index over
//! an in-memory durable store, with a clock of its own.
//!
//! What a crash keeps is [`SimNode::store`] (and the node's identity); what it
//! loses is [`Live`]: the engine and its sessions, the lookup index, writes
//! still on their way to disk.

use std::sync::Arc;
use std::time::Duration;

use veto_core::{LookupIndex, NodeId};
use veto_gossip::engine::{Config, Engine, Now};
use veto_node::{Enforcer, Faults};

use crate::params::EngineParams;
use veto_node::Writer;

use crate::rng::SimRng;
use crate::sched::{Time, EPOCH_SECS, MS, SEC};
use crate::store::Store;

/// What a running node holds in memory.
pub(crate) struct Live {
    pub(crate) engine: Engine,
    /// The lookup index (production's code).
    pub(crate) enforcer: Enforcer,
    /// The deliberate bugs of veto-node this life runs with.
    pub(crate) faults: Faults,
    /// The numbering of this node's own log (production's code).
    pub(crate) writer: Writer,
    /// Local revocations on their way to disk, not yet acknowledged.
    pub(crate) pending: Vec<veto_core::RecordId>,
    /// Records the index refused (it never should).
    pub(crate) index_errors: u64,
}

pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    pub(crate) name: String,
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) live: Option<Live>,
    /// This node's clock minus simulated wall time, ns.
    pub(crate) skew: i64,
    /// Bumped at every crash, so that events of a past life are ignored.
    pub(crate) incarnation: u64,
    pub(crate) rng: SimRng,
    /// When the disk finishes the writes queued so far.
    pub(crate) disk_free: Time,
    /// The flush that has not started yet, which new writes join: (start, end).
    pub(crate) next_flush: Option<(Time, Time)>,
    /// The highest stamp this node gave a record in this life, or that its
    /// store kept from an earlier one: every new stamp must be above it.
    pub(crate) last_stamp: veto_core::Hlc,
    /// The engine timer currently scheduled.
    pub(crate) timer_at: Option<Time>,
    /// The disk fails every write (a `DiskDown` fault).
    pub(crate) disk_down: bool,
    /// Writes are halted after a failed one, until a recovery check finds the
    /// disk working (production retries every two seconds).
    pub(crate) halted: bool,
    /// A recovery check is scheduled.
    pub(crate) recovery_pending: bool,
    /// Whether the node compared its store with the durability marker at its
    /// last start (not with the `ignore-marker` bug).
    pub(crate) marker_checked: bool,
    /// The missing ids the node reported at its last start.
    pub(crate) missing_at_start: u64,
    /// When the node's clock last stepped, and by how much (ms).
    pub(crate) last_step: Option<(Time, i64)>,
    /// The furthest its wall clock has read at an engine input: the engine
    /// never reports a time before it, so an acknowledgement earlier than
    /// it (after the clock stepped back) cannot be placed on the reports'
    /// time line.
    pub(crate) max_wall: Duration,
}

/// The engine configuration a node runs with.
pub(crate) fn engine_config(id: NodeId, name: &str, region: &str, e: &EngineParams) -> Config {
    let mut c = Config::new(id, name, region);
    c.anti_entropy_period = Duration::from_millis(e.anti_entropy_ms);
    c.max_batch_records = e.max_batch_records;
    c.max_batch_bytes = e.max_batch_bytes;
    c.window = e.window;
    c.ack_timeout = Duration::from_millis(e.ack_timeout_ms);
    c.handshake_timeout = Duration::from_millis(e.handshake_timeout_ms);
    c.push_grace = Duration::from_millis(e.push_grace_ms);
    c.retry_delay = Duration::from_millis(e.retry_delay_ms);
    c.gc_grace = Duration::from_secs(e.gc_grace_s);
    c.max_clock_offset = Duration::from_millis(e.max_clock_offset_ms);
    c
}

impl SimNode {
    /// This node's wall clock at simulated time `now`.
    pub(crate) fn local(&self, now: Time) -> Duration {
        let nanos = (EPOCH_SECS * SEC) as i128 + now as i128 + self.skew as i128;
        Duration::from_nanos(nanos.max(0) as u64)
    }

    /// The engine's two clocks at simulated time `now`: the monotonic one is
    /// simulated time itself, the wall clock is skewed.
    pub(crate) fn clocks(&self, now: Time) -> Now {
        Now::new(Duration::from_nanos(now), self.local(now))
    }

    /// Its wall clock at an acknowledgement at `now`, for checking
    /// watermarks; `None` while the clock reads behind what it read before.
    pub(crate) fn ack_time(&self, now: Time) -> Option<Duration> {
        let local = self.local(now);
        (local >= self.max_wall).then_some(local)
    }

    /// This node's wall clock at `now`, in whole Unix seconds.
    pub(crate) fn local_secs(&self, now: Time) -> u64 {
        self.local(now).as_secs()
    }

    /// Starts the node from its durable state under writer id `id`: a new
    /// engine over the store's frontier, a new clock raised to the last local
    /// stamp the store keeps, and the index rebuilt
    /// from the stored records. Seqs start at 1 under a fresh id (as in
    /// production), or after the highest stored one when the id is reused.
    /// Like production, it compares the store with its durability marker
    /// (unless `check_marker` is off) and reports the ids missing.
    pub(crate) fn start(
        &mut self,
        id: NodeId,
        check_marker: bool,
        stamp_floor: bool,
        faults: &Faults,
    ) {
        self.id = id;
        self.halted = false;
        self.recovery_pending = false;
        self.marker_checked = check_marker;
        self.missing_at_start = self.missing();
        self.config.node = id;
        faults.configure(&mut self.config);
        // Production's start: the clock above the last local stamp the store
        // kept (unless the `no-stamp-floor` bug is on), seqs after the highest
        // covered under this id.
        self.last_stamp = self.store.last_stamp().unwrap_or_default();
        let floor = if stamp_floor {
            self.store.last_stamp()
        } else {
            None
        };
        let life = veto_node::begin_life(
            self.id,
            self.store.covered(),
            floor,
            self.config.max_clock_offset,
        );
        let engine = Engine::with_clock(
            self.config.clone(),
            self.store.covered().clone(),
            Arc::clone(&life.clock),
        );
        let mut index = LookupIndex::new();
        let mut index_errors = 0;
        for r in self.store.records() {
            if index.insert_record(r).is_err() {
                index_errors += 1;
            }
        }
        self.live = Some(Live {
            engine,
            enforcer: Enforcer::from_index(index),
            faults: faults.clone(),
            writer: life.writer,
            pending: Vec::new(),
            index_errors,
        });
        self.timer_at = None;
    }

    /// The ids the node reports missing: how far its store's coverage is
    /// below the durability marker, if it checked the marker at start. The
    /// count shrinks as peers send back what it lacks.
    pub(crate) fn missing(&self) -> u64 {
        if !self.marker_checked {
            return 0;
        }
        self.store
            .marker()
            .saturating_sub(self.store.covered_count())
    }

    /// The disk works again (a `DiskUp`, or the heal); writes resume at the
    /// next recovery check.
    pub(crate) fn disk_up(&mut self) {
        self.disk_down = false;
    }

    /// Whether a write now would fail.
    pub(crate) fn writes_fail(&self) -> bool {
        self.halted || self.disk_down
    }

    /// The node crashes: everything in memory is gone.
    pub(crate) fn crash(&mut self) -> Option<Live> {
        self.incarnation += 1;
        self.timer_at = None;
        self.live.take()
    }

    /// Queues a write on the disk; returns when it is durable.
    ///
    /// The disk group-commits, as sled and most databases do: a write that
    /// comes while a flush is under way joins the next flush, which starts
    /// when the current one ends, and completes with it. Writes complete in
    /// the order they were queued.
    pub(crate) fn disk_write(&mut self, now: Time, latency_us: u64) -> Time {
        let latency = latency_us * (MS / 1_000);
        if now >= self.disk_free {
            self.disk_free = now + latency;
            self.next_flush = None;
            return self.disk_free;
        }
        if let Some((start, done)) = self.next_flush {
            if start > now {
                return done;
            }
        }
        let start = self.disk_free;
        self.disk_free = start + latency;
        self.next_flush = Some((start, self.disk_free));
        self.disk_free
    }
}
