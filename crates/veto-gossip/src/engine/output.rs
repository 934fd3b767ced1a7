//! What the engine asks of its driver.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use veto_core::{Frontier, NodeId, Record, RecordId};

use crate::proto::MessageKind;

/// One encoded message payload (without its length prefix). Cloning it is
/// cheap, so one push is encoded once and its bytes shared by every peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(Arc<Vec<u8>>);

impl Frame {
    pub(crate) fn new(bytes: Vec<u8>) -> Frame {
        Frame(Arc::new(bytes))
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One connection to a peer, as the driver names it. The driver picks a fresh
/// key for every connection (a reconnect is a new key) and never reuses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u64);

/// How a message travels on its connection.
///
/// The transport must keep each of the two ordered lanes in order and must
/// not let the bulk lane delay the urgent one (two QUIC streams, for
/// instance). Nothing is assumed about order between lanes. The datagram lane
/// promises nothing: a frame sent on it may be lost, duplicated, or arrive
/// before frames sent earlier on any lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Handshake, pushes of new records, frontiers, acks: small and latency
    /// sensitive.
    Urgent,
    /// Backlog and repair batches: large, paced by acks.
    Bulk,
    /// Redundant copies of pushes, one packet each (a QUIC datagram): never
    /// retransmitted, never held up by a lost packet. A frame too large for
    /// the path may be dropped by the transport. Received as
    /// [`super::Input::Datagram`].
    Datagram,
}

/// Names one [`Output::Persist`] request, to report it done with
/// [`super::Engine::records_durable`] or failed with
/// [`super::Engine::persist_failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistId(pub(crate) u64);

/// How a record reached this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// Eager push from its origin.
    Push,
    /// Anti-entropy repair or backlog streaming.
    Repair,
    /// A redundant copy of an eager push that came before the push itself.
    Echo,
}

/// Something the driver must do, or may want to know.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `frame` to `peer` on `lane`. Messages for one peer and lane must
    /// be sent in the order they are output.
    Send {
        /// The connection.
        peer: PeerKey,
        /// The encoded message, to be sent as one frame behind its length
        /// prefix ([`crate::proto::FRAME_HEADER_BYTES`]).
        frame: Frame,
        /// The lane.
        lane: Lane,
        /// Which message it is, for metrics and logs.
        kind: MessageKind,
    },
    /// Make these durable, atomically if possible, then call
    /// [`super::Engine::records_durable`] with `id` (or
    /// [`super::Engine::persist_failed`]). Until then the engine neither
    /// advertises them nor acknowledges the batches they came in.
    Persist {
        /// Names this request.
        id: PersistId,
        /// Records to store. None is already covered by the frontier the engine
        /// holds; a store that finds one covered anyway skips it.
        records: Vec<Record>,
        /// Seqs to cover without data: pruned by the peer that sent them. A
        /// store covers them and never stores those records later.
        cover: Frontier,
        /// Records whose ids this node already covers but holds no data for
        /// (lost, or dropped by a wrong clock), and which are not expired:
        /// store them again if still absent. The frontier does not change.
        restore: Vec<Record>,
    },
    /// Close the connection, giving `reason` (e.g. as the QUIC close reason).
    /// Any `Send` for this peer output before it should be flushed first. The
    /// engine has already forgotten the connection.
    Close {
        /// The connection.
        peer: PeerKey,
        /// Why, for logs and the peer.
        reason: String,
    },
    /// Something to log or count.
    Event(EngineEvent),
}

/// Things that happened, for logs and metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineEvent {
    /// A peer completed the handshake.
    PeerUp {
        /// The connection.
        peer: PeerKey,
        /// The peer's node id.
        node: NodeId,
        /// The peer's name.
        name: String,
        /// The peer's region.
        region: String,
    },
    /// A message with records was taken in.
    Received {
        /// From whom.
        peer: PeerKey,
        /// Push or repair.
        via: Via,
        /// Records new here, asked to be persisted.
        new: usize,
        /// Records already covered or already on their way to disk.
        duplicates: usize,
        /// Of the new records, those already past `expires_at + gc_grace`
        /// (stored all the same).
        expired: usize,
        /// Seqs covered because the sender had pruned them.
        cleared: u64,
        /// Records taken back for ids covered here without data.
        restored: usize,
        /// Records refused because this node stores different content under
        /// their ids.
        conflicts: usize,
    },
    /// A peer sent a record whose id this node stores with different content.
    /// The stored record stays; the other is refused. Two different records
    /// under one id mean an origin reused a sequence number.
    Conflict {
        /// From whom.
        peer: PeerKey,
        /// The id.
        record: RecordId,
    },
    /// The verdict of [`super::Engine::clock_check`] changed.
    ClockVerdict(super::ClockCheck),
    /// A new record's stamp is more than the maximum offset ahead of this
    /// node's wall clock. The record is stored anyway; the clock does not jump.
    ClockAhead {
        /// Who sent it.
        peer: PeerKey,
        /// The record.
        record: RecordId,
        /// How far ahead its stamp is.
        ahead: Duration,
        /// The configured maximum offset.
        limit: Duration,
    },
    /// A datagram was dropped unread: it came before the handshake, was not
    /// a push, or did not decode. Datagrams carry only copies of what the
    /// lanes carry, so nothing is lost; a stream of these from one peer
    /// points at a bug or an attack, not at data loss.
    DatagramDropped {
        /// Who sent it.
        peer: PeerKey,
        /// Why it was dropped.
        reason: &'static str,
    },
    /// Receipt time minus the record's physical stamp, for a record new here.
    PropagationLatency {
        /// The record's origin.
        origin: NodeId,
        /// The latency (zero if the stamp is ahead of this clock).
        latency: Duration,
        /// Push or repair.
        via: Via,
    },
    /// A message could not be encoded (it would exceed the frame limit) and
    /// was not sent. The engine never builds such messages; this reports a
    /// bug rather than a peer's doing.
    Unencodable {
        /// The connection it was for.
        peer: PeerKey,
        /// Which message.
        kind: MessageKind,
        /// The encoder's error.
        error: String,
    },
    /// A backlog batch went unacknowledged for the ack timeout; its window slot
    /// is reclaimed.
    BatchTimedOut {
        /// The connection.
        peer: PeerKey,
        /// The batch.
        batch_id: u64,
    },
}
