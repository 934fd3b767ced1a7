//! The engine's settings.

use std::time::Duration;

use veto_core::hlc::DEFAULT_MAX_OFFSET;
use veto_core::NodeId;

use crate::proto::{MAX_FRAME_BYTES, MAX_RECORDS_PER_MESSAGE};

/// The most unacknowledged backlog batches a sender may keep in flight to one
/// peer; larger [`Config::window`]s are clamped to it.
pub const MAX_WINDOW: usize = 16;

/// How many received batches may wait for durability, per peer, before the
/// peer counts as ignoring backpressure. Four times [`MAX_WINDOW`], because a
/// sender that timed a batch out sends more while the old one may still be on
/// its way to disk.
pub(crate) const MAX_UNACKED_IN: usize = 4 * MAX_WINDOW;

/// The smallest batch byte budget accepted; smaller settings are raised to it.
const MIN_BATCH_BYTES: usize = 4 * 1024;

/// How one node replicates. [`Config::new`] gives the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's permanent id.
    pub node: NodeId,
    /// This node's name, sent in the handshake.
    pub name: String,
    /// This node's region, sent in the handshake.
    pub region: String,
    /// Mean time between anti-entropy rounds with each peer (default 2 s). Each
    /// round is scheduled uniformly between half and one and a half of it, so
    /// that rounds with different peers drift apart.
    pub anti_entropy_period: Duration,
    /// About how many anti-entropy rounds a node holds per period, over all
    /// its peers (default 8). With more established peers than this, each
    /// peer's rounds are spaced out by peers / this many periods, so that
    /// what a node in sync sends does not grow with the cluster.
    pub anti_entropy_peers: usize,
    /// Up to this many established peers, a new record is pushed to every
    /// one (default 8). Past it, to the peers of this node's region and to
    /// one peer of each other region, which pushes it on to the peers of
    /// its own: each record crosses each WAN path about once. `usize::MAX`
    /// keeps the full mesh at any size.
    pub full_mesh_peers: usize,
    /// The most records in one backlog batch or push (default 1024, at most
    /// [`MAX_RECORDS_PER_MESSAGE`]).
    pub max_batch_records: usize,
    /// The most encoded bytes in one backlog batch or push (default 256 KiB, at
    /// most half of [`MAX_FRAME_BYTES`]). A single record larger than this still
    /// travels, alone.
    pub max_batch_bytes: usize,
    /// Backlog batches in flight to one peer before waiting for its acks
    /// (default 16, between 1 and [`MAX_WINDOW`]). A batch is acknowledged
    /// once durable, so a window carries at most this many batches per round
    /// trip: 16 batches of 1,024 records keep a 100 ms path at about 160,000
    /// records a second, above what a node persists.
    pub window: usize,
    /// How long a backlog batch may stay unacknowledged before its window slot
    /// is reclaimed (default 30 s). The peer's next frontier then shows whether
    /// its records must be sent again.
    pub ack_timeout: Duration,
    /// How long a connected peer has to send its `Hello` (default 10 s).
    pub handshake_timeout: Duration,
    /// How long after pushing records to a peer anti-entropy assumes they are
    /// still on their way, rather than missing (default 1 s). It should exceed
    /// a round trip plus the peer's time to persist.
    pub push_grace: Duration,
    /// When, after a push to a peer in another region, to send it again as
    /// a datagram, once per entry (default 5 ms and 20 ms; empty for none).
    /// Each copy is its own packet, so a push is late only when every copy
    /// is lost: at 5% loss, one in 8,000 rather than one in 20. Spaced a few
    /// milliseconds apart so that a short burst of loss takes no more than
    /// one. They cost the push's bytes again per copy, on WAN links only.
    pub push_echoes: Vec<Duration>,
    /// The largest push frame that gets copies (default 1,100 bytes: one
    /// packet on any path QUIC runs on). Larger pushes, as in a burst of
    /// revocations, rely on the urgent lane alone.
    pub max_echo_bytes: usize,
    /// How long to wait before reading from the record source again after it
    /// failed (default 1 s).
    pub retry_delay: Duration,
    /// Time past `expires_at` after which a record is garbage (default 1 h). A
    /// received record already past it is covered but not stored.
    pub gc_grace: Duration,
    /// How far ahead of the local wall clock a record's stamp may be before it
    /// is reported as [`super::EngineEvent::ClockAhead`] (default 500 ms).
    pub max_clock_offset: Duration,
    /// A deliberate bug, for the tests that prove the checks catch it (see
    /// veto-node's `Fault::AdvertiseBeforeDurable`): received records count
    /// as held, and are advertised, as soon as they are handed to the driver
    /// to persist, not once it reports them durable. Off by default; never
    /// on in a node that serves.
    pub advertise_before_durable: bool,
    /// A deliberate bug, for the tests that prove the checks catch it (see
    /// veto-node's `Fault::ReportBeforeDurable`): this node's report, which
    /// receipts are made from, counts records still on their way to disk.
    /// Off by default; never on in a node that serves.
    pub report_before_durable: bool,
}

impl Config {
    /// The defaults, for a node with this identity.
    pub fn new(node: NodeId, name: impl Into<String>, region: impl Into<String>) -> Config {
        Config {
            node,
            name: name.into(),
            region: region.into(),
            anti_entropy_period: Duration::from_secs(2),
            anti_entropy_peers: 8,
            full_mesh_peers: 8,
            max_batch_records: 1024,
            max_batch_bytes: 256 * 1024,
            window: MAX_WINDOW,
            ack_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            push_grace: Duration::from_secs(1),
            push_echoes: vec![Duration::from_millis(5), Duration::from_millis(20)],
            max_echo_bytes: 1100,
            retry_delay: Duration::from_secs(1),
            gc_grace: Duration::from_secs(3600),
            max_clock_offset: DEFAULT_MAX_OFFSET,
            advertise_before_durable: false,
            report_before_durable: false,
        }
    }

    /// The same settings, with every limit brought within what the protocol
    /// allows.
    pub(crate) fn clamped(mut self) -> Config {
        self.max_batch_records = self.max_batch_records.clamp(1, MAX_RECORDS_PER_MESSAGE);
        self.max_batch_bytes = self
            .max_batch_bytes
            .clamp(MIN_BATCH_BYTES, MAX_FRAME_BYTES / 2);
        self.window = self.window.clamp(1, MAX_WINDOW);
        self
    }
}
