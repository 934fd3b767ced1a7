//! Transport settings and the quinn configuration made from them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, VarInt};

use super::admission::Admission;
use super::queue::FRAME_OVERHEAD;
use super::TransportError;
use crate::tls::ClusterTls;

/// Bytes one lane may have in flight before the receiver reads them: 4 MiB.
const STREAM_WINDOW_BYTES: u32 = 4 << 20;

/// Received datagrams waiting to be read, in bytes, per connection.
const DATAGRAM_BUFFER_BYTES: usize = 256 * 1024;

/// Packets a later one may overtake before the earlier counts as lost: high
/// enough that on any real path only the time threshold decides.
const REORDER_PACKETS: u32 = 1 << 16;

/// How long, as a multiple of the round trip, an unacknowledged packet that
/// later ones overtook still counts as on its way: a little above RFC
/// 9002's 9/8, for the jitter of a real path. With BBR a false loss costs
/// only the packet's second copy, not the congestion window; a real one
/// holds up the bulk stream behind it until the copy arrives, and on a
/// jittered path at line rate a packet can go missing without any loss on
/// the path (quinn's receiver drops one that arrives more than 128 packet
/// numbers behind the newest). Two round trips,
/// chosen when Cubic halved its window on every false loss, made a
/// 1,000,000-record backlog over 50 ms ± 5 ms take 22 s; 1.25 takes 16 s
/// (bench/RESULTS.md).
const REORDER_TIME: f32 = 1.25;

/// Settings of a [`Transport`](super::Transport). [`TransportConfig::new`] fills
/// in the defaults; the fields are public to override them.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The UDP address to listen on (and dial from).
    pub listen: SocketAddr,
    /// This node's certificates and the CA it trusts.
    pub tls: ClusterTls,
    /// Largest frame accepted or sent, in bytes. Default 1 MiB.
    pub max_frame_bytes: usize,
    /// Interval of QUIC keep-alive pings. Default 2 s.
    pub keep_alive: Duration,
    /// A connection with no packets for this long is dead. Default 10 s.
    pub idle_timeout: Duration,
    /// Limit for a QUIC handshake plus lane setup. Default 5 s.
    pub handshake_timeout: Duration,
    /// First wait after a failed dial. Default 100 ms.
    pub backoff_min: Duration,
    /// Longest wait between dials. Default 10 s.
    pub backoff_max: Duration,
    /// Capacity of each connection's urgent send queue, in bytes. Default 2 MiB.
    pub urgent_queue_bytes: usize,
    /// Capacity of each connection's bulk send queue, in bytes. Default 8 MiB:
    /// a full replication window of maximal batches (16 × 256 KiB) with room
    /// to spare.
    pub bulk_queue_bytes: usize,
    /// Capacity of the event channel, in events. Default 1024. When it is full,
    /// reading from peers pauses, and QUIC flow control slows the senders.
    pub event_capacity: usize,
    /// Incoming handshakes in progress at once; more are refused. Default 64.
    pub max_pending_handshakes: usize,
    /// Whether a peer whose certificate the CA vouches for may connect,
    /// asked right after each handshake. Default: every one may.
    pub admission: Admission,
}

impl TransportConfig {
    /// The defaults, listening on `listen` with the identity `tls`.
    pub fn new(listen: SocketAddr, tls: ClusterTls) -> Self {
        TransportConfig {
            listen,
            tls,
            max_frame_bytes: 1 << 20,
            keep_alive: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            urgent_queue_bytes: 2 << 20,
            bulk_queue_bytes: 8 << 20,
            event_capacity: 1024,
            max_pending_handshakes: 64,
            admission: Admission::allow_all(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), TransportError> {
        let bad = |msg: String| Err(TransportError::Config(msg));
        if self.max_frame_bytes == 0 || self.max_frame_bytes > u32::MAX as usize {
            return bad(format!(
                "max_frame_bytes must be 1 to {}, got {}",
                u32::MAX,
                self.max_frame_bytes
            ));
        }
        let smallest_queue = self.urgent_queue_bytes.min(self.bulk_queue_bytes);
        if smallest_queue < self.max_frame_bytes + FRAME_OVERHEAD {
            return bad(format!(
                "send queues ({smallest_queue} bytes) must hold at least one maximal frame ({} bytes)",
                self.max_frame_bytes + FRAME_OVERHEAD
            ));
        }
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return bad(format!(
                "keep_alive ({:?}) must be positive and shorter than idle_timeout ({:?})",
                self.keep_alive, self.idle_timeout
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return bad(format!(
                "backoff_min ({:?}) must be positive and at most backoff_max ({:?})",
                self.backoff_min, self.backoff_max
            ));
        }
        if self.handshake_timeout.is_zero() {
            return bad("handshake_timeout must be positive".into());
        }
        if self.event_capacity == 0 || self.max_pending_handshakes == 0 {
            return bad("event_capacity and max_pending_handshakes must be positive".into());
        }
        Ok(())
    }

    fn quic_transport(&self) -> Result<quinn::TransportConfig, TransportError> {
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| TransportError::Config("idle_timeout is too long".into()))?;
        let mut t = quinn::TransportConfig::default();
        t.keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(idle))
            // Exactly the two lane streams; a peer cannot open more than that.
            .max_concurrent_uni_streams(VarInt::from_u32(2))
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            // Redundant copies of urgent frames (see
            // `Transport::send_datagram`); a receiver that falls behind drops
            // the oldest, which the lanes carry anyway.
            .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER_BYTES))
            // A WAN path with jitter reorders packets by far more than the
            // default three, and each reordering counted as a loss halves the
            // congestion window: a backlog over a 50 ± 5 ms link then crawls.
            // Loss is found by time alone, as TCP's RACK does.
            // Room for a full replication window of backlog on the bulk
            // lane over a long path (quinn's default assumes 1.25 MB per
            // round trip).
            .stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
            .packet_threshold(REORDER_PACKETS)
            .time_threshold(REORDER_TIME)
            .congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
        Ok(t)
    }

    pub(crate) fn quinn_server(&self) -> Result<quinn::ServerConfig, TransportError> {
        let crypto = QuicServerConfig::try_from(self.tls.server_config())
            .map_err(|e| TransportError::Config(format!("TLS server config: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(self.quic_transport()?));
        Ok(server)
    }

    pub(crate) fn quinn_client(&self) -> Result<quinn::ClientConfig, TransportError> {
        let crypto = QuicClientConfig::try_from(self.tls.client_config())
            .map_err(|e| TransportError::Config(format!("TLS client config: {e}")))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::new(self.quic_transport()?));
        Ok(client)
    }

    /// Reset tokens and connection IDs are keyed by secrets derived from the
    /// node's key, so they survive a restart (see `ClusterTls::cid_key`).
    pub(crate) fn quinn_endpoint(&self) -> quinn::EndpointConfig {
        let mut config = quinn::EndpointConfig::new(Arc::new(self.tls.reset_key()));
        let cid_key = self.tls.cid_key();
        config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        config
    }
}
