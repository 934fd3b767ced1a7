//! The convergence bound: how long after the heal every node may take to hold
//! the same records. A run that takes longer breaks an invariant.
//!
//! At the heal every partition lifts, every crashed or not yet started node
//! starts, loss, chaos, disk and read failures stop, and the workload stops.
//! The cluster is a full mesh and the engine does not relay, so every record
//! held anywhere reaches a node that lacks it in one hop, from any holder, as
//! soon as the two exchanged frontiers. Let RTT be the largest round trip
//! between two nodes, jitter included. Then, term by term:
//!
//! 1. **A connection to start from** (`t_connect`). A pair without a
//!    connection redials within `backoff_max`; a dial already under way to a
//!    node that was unreachable fails first, after `dial_timeout`. A side
//!    whose peer forgot the connection learns it by a stateless reset within
//!    `keep_alive + RTT`, then redials. Under chaos (which may have eaten a
//!    `Hello`) an engine closes a stuck handshake after `handshake_timeout`.
//!    The QUIC handshake takes 1.5 RTT; `Hello`, the opening `Digest`s and,
//!    where they differ, the first `Frontier`s 1.5 RTT more.
//!    `t_connect = max(dial_timeout, keep_alive + RTT, [chaos] handshake_timeout + RTT)
//!    + backoff_max + 3 RTT`.
//! 2. **Or an established connection's next round** (`t_round`). Packets
//!    stalled on a blocked path are retransmitted within 1.5 RTT. The next
//!    anti-entropy round comes within 1.5 × the period (rounds are jittered
//!    to 0.5–1.5 ×; timers follow the monotonic clock, which no clock step
//!    moves), after records pushed within `push_grace` stop counting as on
//!    their way.
//!    If a batch could have been lost (chaos drops, failed persists, halted
//!    writes), its window slot comes back only after `ack_timeout`; after a
//!    failed read the stream resumes after `retry_delay`.
//!    `t_round = 1.5 RTT + push_grace + 1.5 × period
//!    + [loss of a batch possible] ack_timeout + [read failures] retry_delay`.
//! 3. **The backlog** (`t_stream`). A node lacking `L` records receives them
//!    in batches of `b = min(max_batch_records, max_batch_bytes / record
//!    size)` records, `window` batches per round trip. Every peer may stream
//!    the same backlog at once, and writes to one disk queue up, so one round
//!    costs `RTT + (nodes - 1) × window × disk_max`, plus the bytes of a
//!    window on the link.
//!    `t_stream = ceil(ceil(L / b) / window) × round + L × size / bandwidth`.
//! 4. **Repair of data lost under covered ids** (`t_repair`, only after a
//!    disk fault destroyed data). Two nodes that cover the same seqs but hold
//!    different records compare holdings in every frontier; after two
//!    frontiers in a row that differ (within 3 periods) the node lacking data
//!    sends `Held`, at most once per backoff, which doubles up to 64 periods;
//!    each `Held` describes up to `MAX_HELD_RANGES` ranges of held seqs, so a
//!    fragmented log takes `windows` of them. The holder streams back what is
//!    lacking (its records count in the backlog `L`).
//!    `t_repair = 3 × period + windows × (64 + 1.5) × period + RTT`.
//! 5. **Recovery of halted writes** (`t_recover`): a node whose writes halted
//!    after a failed write (or whose disk came back at the heal) checks every
//!    two seconds whether the disk works, and resumes; until then nothing
//!    reaches its disk. `t_recover = 2 s` if a node is halted at the heal.
//! 6. **The last write** (`t_tail = disk_max + RTT + disk_backlog`), where
//!    `disk_backlog` is how long the busiest disk still has to work on what
//!    was queued before the heal (writes are group-committed, so this is at
//!    most two flushes).
//!
//! `bound = t_recover + max(t_connect, t_round) + t_stream + t_repair + t_tail`.
//!
//! The bound is an upper bound, not an estimate: runs usually converge in a
//! few round trips, and the report shows both.

use serde::Serialize;

use crate::params::Params;
use crate::sched::{Time, MS};

/// How often a node whose writes halted checks whether its disk works again,
/// ms (production's storage recovery interval).
pub(crate) const RECOVERY_MS: u64 = 2_000;

/// The longest wait between two `Held` messages for one origin, in
/// anti-entropy periods (the engine's `holdings::MAX_BACKOFF_ROUNDS`).
const HELD_MAX_BACKOFF_ROUNDS: u64 = 64;

/// What the bound depends on besides the parameters, measured at the heal.
pub(crate) struct AtHeal {
    /// Largest RTT between two nodes, jitter included.
    pub(crate) max_rtt: Time,
    /// The most records any node lacks (plus local writes still on their way,
    /// plus records whose data a disk fault destroyed).
    pub(crate) backlog: u64,
    /// Whether writes may have halted during the run (a batch may be lost).
    pub(crate) halts: bool,
    /// Whether a live node's writes are halted at the heal.
    pub(crate) recovering: bool,
    /// `Held` windows a holdings repair may take (0: no data was lost under
    /// covered ids).
    pub(crate) held_windows: u64,
    /// The largest encoded record.
    pub(crate) record_bytes: usize,
    /// Whether messages may have been dropped for good (transport chaos).
    pub(crate) chaos: bool,
    /// The longest a disk still has to work on writes queued before the heal.
    pub(crate) disk_backlog: Time,
}

/// The bound and its terms, in ms.
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    /// Until a fresh connection exchanged frontiers.
    pub connect_ms: f64,
    /// Until an existing connection's next anti-entropy round.
    pub round_ms: f64,
    /// Streaming the backlog.
    pub stream_ms: f64,
    /// Repairing data lost under covered ids (0 if none was).
    pub repair_ms: f64,
    /// Until halted writes resume (0 if none are halted).
    pub recover_ms: f64,
    /// The last write.
    pub tail_ms: f64,
    /// Records the worst node lacked at the heal.
    pub backlog: u64,
    /// The bound itself.
    pub total_ms: f64,
}

impl Bound {
    pub(crate) fn derive(p: &Params, h: &AtHeal) -> (Bound, Time) {
        let ms = |x: u64| x * MS;
        let t = &p.transport;
        let e = &p.engine;
        let rtt = h.max_rtt;
        let disk_max = p.disk.max_us * (MS / 1_000);
        let batch_loss = h.chaos || p.disk.fail_prob > 0.0 || h.halts;
        let period = ms(e.anti_entropy_ms);

        let mut wait = ms(t.dial_timeout_ms).max(ms(t.keep_alive_ms) + rtt);
        if h.chaos {
            wait = wait.max(ms(e.handshake_timeout_ms) + rtt);
        }
        let connect = wait + ms(t.backoff_max_ms) + rtt * 3;

        let mut round = rtt * 3 / 2 + ms(e.push_grace_ms) + ms(e.anti_entropy_ms) * 3 / 2;
        if batch_loss {
            round += ms(e.ack_timeout_ms);
        }
        if p.disk.read_fail_prob > 0.0 {
            round += ms(e.retry_delay_ms);
        }

        let size = h.record_bytes.max(1) as u64;
        let per_batch = (e.max_batch_records as u64)
            .min(e.max_batch_bytes as u64 / size)
            .max(1);
        let batches = h.backlog.div_ceil(per_batch);
        let window = e.window.max(1) as u64;
        let peers = p.nodes().saturating_sub(1) as u64;
        let ns_per_byte = 8_000.0 / p.net.bandwidth_mbps.max(1.0);
        let window_bytes = (window * per_batch * size) as f64 * ns_per_byte;
        let per_round = rtt + peers * window * disk_max + window_bytes as Time;
        let stream = batches.div_ceil(window) * per_round
            + (h.backlog as f64 * size as f64 * ns_per_byte) as Time;
        let tail = disk_max + rtt + h.disk_backlog;
        let repair = if h.held_windows == 0 {
            0
        } else {
            period * 3 + h.held_windows * (HELD_MAX_BACKOFF_ROUNDS * period + period * 3 / 2) + rtt
        };
        let recover = if h.recovering { ms(RECOVERY_MS) } else { 0 };
        let total = recover + connect.max(round) + stream + repair + tail;
        let f = |x: Time| x as f64 / MS as f64;
        (
            Bound {
                connect_ms: f(connect),
                round_ms: f(round),
                stream_ms: f(stream),
                repair_ms: f(repair),
                recover_ms: f(recover),
                tail_ms: f(tail),
                backlog: h.backlog,
                total_ms: f(total),
            },
            total,
        )
    }
}
