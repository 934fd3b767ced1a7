//! QUIC transport between veto nodes: mutual TLS, two lanes of opaque frames,
//! one connection per pair of nodes, and reconnection forever.
//!
//! The transport knows nothing of the protocol: it carries byte frames and
//! reports [`TransportEvent`]s. [`Transport::bind`] returns a cheap-to-clone
//! handle and the event receiver.
//!
//! # Wire format
//!
//! After the QUIC handshake (TLS 1.3, ALPN `veto/1`, both sides presenting a
//! certificate from the cluster CA) each side opens two unidirectional streams
//! and writes one tag byte on each: `U` (0x55) for the urgent lane and `B`
//! (0x42) for the bulk lane. A connection is announced as
//! [`TransportEvent::Connected`] only once both of the peer's lanes have
//! arrived, which also proves the peer accepted our certificate. After the tag,
//! a lane carries frames: a `u32` big-endian length, then that many bytes.
//! Lanes are separate QUIC streams with their own flow control, and the urgent
//! one is sent with priority, so a pushed revocation never waits behind a bulk
//! backlog.
//!
//! A frame longer than [`TransportConfig::max_frame_bytes`], a stream that ends
//! mid-frame, an unknown tag or any extra stream is a protocol violation: the
//! connection is closed with application error code 3 and a reason, and
//! counted in `veto_gossip_frame_errors_total`. Other connections are unaffected.
//!
//! # One connection per pair
//!
//! Each node knows both certificate names once a connection is up. When two
//! connections link the same pair (both sides dialled at once), both sides keep
//! the one dialled by the node whose name sorts first (byte-wise) and close the
//! other with code 1, reason "duplicate". If both were dialled by the same side,
//! the newer one wins: the older is a leftover the peer has already forgotten
//! (it restarted). A connection to a node with our own name is refused (code 2).
//! At most one connection per peer name is announced at a time: a replacement's
//! `Connected` comes after the replaced connection's `Disconnected`.
//!
//! # Dialling
//!
//! [`Transport::add_peer`] dials an address until [`Transport::remove_peer`].
//! After a failure it waits an exponential backoff (from `backoff_min`, doubling
//! to `backoff_max`) with jitter (each wait is drawn from half to all of the
//! current backoff). While a connection to the node at that address is up,
//! whoever dialled it, the dialler waits. Keep-alives every `keep_alive` and an
//! idle timeout of `idle_timeout` make a dead peer show as disconnected within
//! seconds. A node that crashed and restarts goes faster still: its QUIC
//! stateless-reset and connection-ID keys are derived from its private key, so
//! it answers packets of its old connections with a stateless reset and peers
//! drop them at once. Nothing polls: an idle, connected node only wakes for
//! keep-alives.
//!
//! # Metrics
//!
//! `veto_gossip_connections{state}` (gauge: connected, dialing, backoff),
//! `veto_gossip_frames_total{direction,lane}`, `veto_gossip_bytes_total{direction,lane}`,
//! `veto_gossip_tls_rejected_total{direction}`, `veto_gossip_frame_errors_total{kind}`,
//! `veto_gossip_handshake_failures_total`, `veto_gossip_dial_failures_total`,
//! `veto_gossip_duplicate_connections_total`, `veto_gossip_send_queue_full_total{lane}`.
//!
//! # Admission
//!
//! A certificate from the cluster CA gets a peer through the TLS handshake;
//! whether it may be one is the node's call. Right after the handshake, on
//! both dial and accept, [`TransportConfig::admission`] sees the certificate's
//! name and SHA-256 (and the dialled address); a refusal closes the
//! connection with code 5 and its reason before any lane opens, with no
//! event, counted in [`TransportTotals::refused`]. The name a dial proved is
//! still recorded for its address ([`PeerStatus::name`]).

mod admission;
mod config;
mod conn;
mod dial;
mod frame;
mod handle;
mod inner;
mod metrics;
mod queue;
mod registry;
mod socket;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub use admission::{Admission, PeerIdentity};
pub use config::TransportConfig;
pub use handle::Transport;
pub use socket::{widen_udp_buffers, UdpBuffers, UDP_BUFFER_BYTES};

/// Identifies one connection for as long as the transport lives; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Which of a connection's two streams a frame travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Small, latency-sensitive frames (eager pushes, handshakes); sent first.
    Urgent,
    /// Large transfers (anti-entropy batches); never delays the urgent lane.
    Bulk,
}

impl Lane {
    /// Both lanes.
    pub const ALL: [Lane; 2] = [Lane::Urgent, Lane::Bulk];

    /// The lane's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Urgent => "urgent",
            Lane::Bulk => "bulk",
        }
    }

    fn index(self) -> usize {
        match self {
            Lane::Urgent => 0,
            Lane::Bulk => 1,
        }
    }
}

/// What the transport reports. For one connection, `Connected` comes first, then
/// its `Frame`s, then exactly one `Disconnected`; connections that never got as
/// far as `Connected` (refused, duplicate, failed setup) produce no event.
#[derive(Debug, Clone)]
pub enum TransportEvent {
    /// A connection is up and both lanes are open.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer's node name, from the common name of its certificate.
        peer_name: String,
        /// The SHA-256 of the peer's certificate (DER).
        cert_sha256: [u8; 32],
        /// The peer's UDP address as seen from here.
        remote: SocketAddr,
        /// True when this node dialled it, false when the peer did.
        dialed: bool,
    },
    /// A frame arrived.
    Frame {
        /// The connection it came on.
        conn: ConnId,
        /// The lane it came on.
        lane: Lane,
        /// The frame, without its length prefix.
        bytes: Bytes,
    },
    /// A datagram arrived: a frame sent with [`Transport::send_datagram`],
    /// which may be lost, duplicated or overtake frames sent before it.
    Datagram {
        /// The connection it came on.
        conn: ConnId,
        /// The datagram's payload.
        bytes: Bytes,
    },
    /// A connection ended; its id is never used again.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// Why, for logs: "duplicate", "idle timeout", "closed by peer: ...", ...
        reason: String,
    },
}

/// Why [`Transport::send`] refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No such connection: it closed, or never existed.
    #[error("no connection {0}")]
    UnknownConnection(ConnId),
    /// The lane's queue is full; try again later or drop the frame.
    #[error("the {} send queue is full", .0.as_str())]
    Full(Lane),
    /// The frame is longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The connection is closing.
    #[error("connection {0} is closing")]
    Closed(ConnId),
    /// A datagram longer than the path carries in one packet right now.
    #[error("datagram of {len} bytes exceeds the path's {max}-byte limit")]
    DatagramTooLarge {
        /// The datagram's length.
        len: usize,
        /// The limit, from the path's current MTU.
        max: usize,
    },
}

/// Why [`Transport::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error("invalid transport configuration: {0}")]
    Config(String),
}

/// A snapshot of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStats {
    /// The peer's node name.
    pub peer_name: String,
    /// The SHA-256 of the peer's certificate (DER).
    pub cert_sha256: [u8; 32],
    /// The peer's address.
    pub remote: SocketAddr,
    /// True when this node dialled the connection.
    pub dialed: bool,
    /// How long the connection has been up.
    pub age: Duration,
    /// QUIC's current round-trip time estimate.
    pub rtt: Duration,
    /// The congestion window, in bytes.
    pub cwnd: u64,
    /// UDP packets considered lost so far.
    pub lost_packets: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames written to the connection.
    pub frames_out: u64,
    /// Frame payload bytes received.
    pub bytes_in: u64,
    /// Frame payload bytes written.
    pub bytes_out: u64,
    /// Bytes waiting in the urgent queue (including per-frame bookkeeping).
    pub urgent_queued: usize,
    /// Bytes waiting in the bulk queue (including per-frame bookkeeping).
    pub bulk_queued: usize,
}

/// How a configured peer address is doing, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The address being dialled.
    pub addr: SocketAddr,
    /// The node name last seen at this address, if any.
    pub name: Option<String>,
    /// What the dialler is doing.
    pub state: PeerState,
    /// The connection to this peer, if one is up (dialled by either side).
    pub conn: Option<ConnId>,
}

/// What the dialler for one address is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// A handshake is in progress.
    Dialing,
    /// Connected (by this node's dial or the peer's).
    Connected,
    /// Waiting before the next attempt after a failure.
    Backoff,
    /// The address answers with this node's own name; redialled only rarely.
    Myself,
}

/// Counters since the transport started, for tests and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportTotals {
    /// Peer certificates refused in TLS handshakes (both directions).
    pub tls_rejected: u64,
    /// Connections closed for a protocol violation (bad frame, bad stream).
    pub frame_errors: u64,
    /// Incoming handshakes that failed or timed out.
    pub handshake_failures: u64,
    /// Outgoing dials that failed.
    pub dial_failures: u64,
    /// Connections announced with `Connected`.
    pub connections: u64,
    /// Connections closed as duplicates of another to the same peer.
    pub duplicates: u64,
    /// Connections the node's [`Admission`] refused after the handshake.
    pub refused: u64,
}
