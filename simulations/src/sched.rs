//! Simulated time, the event queue, and the trace hash.
//!
//! Time is a `u64` of nanoseconds since the run began. Events due at the same
//! instant run in the order they were scheduled, so a run is a pure function
//! of its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use veto_core::{Frontier, Record};
use veto_gossip::engine::PersistId;

/// Simulated time: nanoseconds since the run began.
pub(crate) type Time = u64;

/// One millisecond of simulated time.
pub(crate) const MS: Time = 1_000_000;
/// One second of simulated time.
pub(crate) const SEC: Time = 1_000 * MS;

/// The wall clock (seconds since the Unix epoch) at simulated time zero. Node
/// clocks read this plus the simulated time plus their own skew.
pub(crate) const EPOCH_SECS: u64 = 1_700_000_000;

/// Something due to happen.
pub(crate) enum Event {
    /// A frame reaches the far end of a connection (or would, if the path is
    /// open). `seq` is its place in its lane; `None` for a copy the network
    /// duplicated or reordered, which the lane does not hold back.
    Arrive {
        conn: u64,
        dir: u8,
        lane: u8,
        seq: Option<u64>,
        frame: Vec<u8>,
    },
    /// One side of a connection may have timed out or been told it is gone.
    SideCheck { conn: u64, side: u8 },
    /// A dial attempt for a node pair.
    Dial { pair: usize, token: u64 },
    /// A QUIC handshake completes.
    ConnUp { pair: usize, token: u64 },
    /// A node's engine timer.
    Timer { node: usize, incarnation: u64 },
    /// A persist request reaches the disk and returns.
    PersistDone {
        node: usize,
        incarnation: u64,
        id: PersistId,
        records: Vec<Record>,
        cover: Frontier,
        restore: Vec<Record>,
        fail: bool,
    },
    /// A local revocation is durable at its origin: it is acknowledged.
    LocalDurable {
        node: usize,
        incarnation: u64,
        records: Vec<Record>,
    },
    /// A node's garbage collector runs.
    Gc { node: usize },
    /// A node whose writes halted checks whether its disk works again.
    Recover { node: usize, incarnation: u64 },
    /// The workload revokes something.
    Revoke,
    /// The workload checks a token.
    Check,
    /// A large batch is revoked at once.
    BulkImport,
    /// Step `index` of the fault plan.
    Fault { index: usize },
    /// All faults end; the workload stops; convergence is measured from here.
    Heal,
    /// The convergence bound has passed.
    Deadline,
    /// The run ends.
    End,
}

struct Entry {
    at: Time,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: the heap pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Pending events, earliest first; ties in scheduling order.
#[derive(Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl Queue {
    pub(crate) fn push(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            event,
        });
    }

    pub(crate) fn pop(&mut self) -> Option<(Time, Event)> {
        self.heap.pop().map(|e| (e.at, e.event))
    }
}

/// A running 64-bit hash of everything that happened: two runs with the same
/// trace hash did the same things at the same instants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trace(u64);

impl Default for Trace {
    fn default() -> Self {
        Trace(0xcbf2_9ce4_8422_2325)
    }
}

impl Trace {
    pub(crate) fn word(&mut self, x: u64) {
        self.0 = crate::rng::mix(self.0 ^ x);
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        w[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(w) ^ (b.len() as u64) << 56);
    }

    pub(crate) fn value(self) -> u64 {
        self.0
    }
}
