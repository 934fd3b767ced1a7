//! The public handle, the shared state behind it, and the accept loop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::config::TransportConfig;
use super::frame::code;
use super::inner::Inner;
use super::metrics::{Metrics, Totals};
use super::queue::PushError;
use super::registry::{PeerEntry, Registry};
use super::{
    conn, dial, ConnId, ConnStats, Lane, PeerState, PeerStatus, SendError, TransportError,
    TransportEvent, TransportTotals,
};

/// How long [`Transport::shutdown`] lets tasks finish (and say `Disconnected`)
/// before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long [`Transport::shutdown`] waits for closing connections to drain.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Shuts the transport down when the last [`Transport`] handle is dropped;
/// tasks hold [`Inner`] but not this, so they cannot keep it alive.
struct DropGuard(Arc<Inner>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.begin_shutdown();
    }
}

/// A QUIC endpoint that carries frames to and from peers. Cheap to clone; the
/// transport shuts down on [`Transport::shutdown`] or when every clone is dropped.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
    _guard: Arc<DropGuard>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("name", &self.inner.local_name)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Binds the UDP socket and starts accepting peers. Returns the handle and
    /// the receiver of every [`TransportEvent`]; it must be drained, or reading
    /// from peers stalls.
    pub async fn bind(
        config: TransportConfig,
    ) -> Result<(Transport, mpsc::Receiver<TransportEvent>), TransportError> {
        config.validate()?;
        let server = config.quinn_server()?;
        let client_config = config.quinn_client()?;
        let addr = config.listen;
        let bind_error = |source| TransportError::Bind { addr, source };
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_error)?;
        super::socket::widen_udp_buffers(&socket).map_err(bind_error)?;
        let endpoint = quinn::Endpoint::new(
            config.quinn_endpoint(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_error)?;
        let local_addr = endpoint.local_addr().map_err(bind_error)?;
        let (events, receiver) = mpsc::channel(config.event_capacity);
        let inner = Arc::new(Inner {
            endpoint,
            local_addr,
            local_name: config.tls.node_name().to_owned(),
            client_config,
            events,
            registry: Mutex::new(Registry::default()),
            shutdown: watch::Sender::new(false),
            tasks: Mutex::new(JoinSet::new()),
            runtime: tokio::runtime::Handle::current(),
            totals: Totals::default(),
            metrics: Metrics::new(),
            handshakes: Arc::new(Semaphore::new(config.max_pending_handshakes)),
            config,
        });
        inner.spawn(accept_loop(inner.clone()));
        tracing::info!(name = %inner.local_name, addr = %local_addr, "gossip transport listening");
        let transport = Transport {
            _guard: Arc::new(DropGuard(inner.clone())),
            inner,
        };
        Ok((transport, receiver))
    }

    /// The bound UDP address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's name, from its certificate.
    pub fn node_name(&self) -> &str {
        &self.inner.local_name
    }

    /// Starts dialling `addr`, and keeps a connection to it until
    /// [`Transport::remove_peer`]. Adding an address twice changes nothing.
    pub fn add_peer(&self, addr: SocketAddr) {
        let inner = &self.inner;
        let stop = {
            let mut reg = inner.registry();
            if inner.is_shutting_down() || reg.peers.contains_key(&addr) {
                return;
            }
            let generation = reg.alloc_generation();
            let (stop, stopped) = watch::channel(false);
            reg.peers.insert(
                addr,
                PeerEntry {
                    generation,
                    name: None,
                    state: PeerState::Dialing,
                    stop,
                },
            );
            inner.publish_states(&reg);
            (generation, stopped)
        };
        let (generation, stopped) = stop;
        inner.spawn(dial::run(inner.clone(), addr, generation, stopped));
    }

    /// Stops dialling `addr` and closes the connection to the node there (the
    /// one found by the name last seen at that address, or by remote address).
    pub fn remove_peer(&self, addr: SocketAddr) {
        let targets = {
            let mut reg = self.inner.registry();
            let Some(peer) = reg.peers.remove(&addr) else {
                return;
            };
            peer.stop.send_replace(true);
            self.inner.publish_states(&reg);
            reg.all_conns()
                .into_iter()
                .filter(|c| c.remote == addr || peer.name.as_deref() == Some(c.peer_name.as_str()))
                .collect::<Vec<_>>()
        };
        for conn in targets {
            conn.close(code::REMOVED, "peer removed");
        }
    }

    /// The configured peer addresses and how each is doing.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.inner.registry().peer_statuses()
    }

    /// Queues `frame` on a lane of a connection without waiting. A full queue
    /// is [`SendError::Full`]: the caller decides whether to retry or drop.
    pub fn send(&self, conn: ConnId, lane: Lane, frame: Bytes) -> Result<(), SendError> {
        let max = self.inner.config.max_frame_bytes;
        if frame.len() > max {
            return Err(SendError::TooLarge {
                len: frame.len(),
                max,
            });
        }
        let shared = self
            .inner
            .registry()
            .conn(conn)
            .ok_or(SendError::UnknownConnection(conn))?;
        shared.queue(lane).push(frame).map_err(|e| match e {
            PushError::Full => {
                self.inner.metrics.queue_full(lane);
                SendError::Full(lane)
            }
            PushError::Closed => SendError::Closed(conn),
        })
    }

    /// Sends `payload` as one QUIC datagram: no retransmission, no order, no
    /// flow control, so it is neither delayed by a lost packet before it nor
    /// resent when lost itself. For redundant copies of what a lane carries
    /// reliably. It must fit in one packet of the path (about 1,200 bytes).
    pub fn send_datagram(&self, conn: ConnId, payload: Bytes) -> Result<(), SendError> {
        let shared = self
            .inner
            .registry()
            .conn(conn)
            .ok_or(SendError::UnknownConnection(conn))?;
        let len = payload.len();
        let max = shared.conn.max_datagram_size().unwrap_or(0);
        if len > max {
            return Err(SendError::DatagramTooLarge { len, max });
        }
        match shared.conn.send_datagram(payload) {
            Ok(()) => {
                self.inner.metrics.datagram_out(len);
                Ok(())
            }
            Err(quinn::SendDatagramError::TooLarge) => {
                Err(SendError::DatagramTooLarge { len, max })
            }
            Err(_) => Err(SendError::Closed(conn)),
        }
    }

    /// Closes a connection; its `Disconnected` event carries `reason`. If the
    /// peer is configured, it is redialled after the backoff.
    pub fn close(&self, conn: ConnId, reason: &str) {
        if let Some(shared) = self.inner.registry().conn(conn) {
            shared.close(code::NORMAL, reason);
        }
    }

    /// A snapshot of one connection, or None once it is gone.
    pub fn stats(&self, conn: ConnId) -> Option<ConnStats> {
        let shared = self.inner.registry().conn(conn)?;
        Some(shared.stats())
    }

    /// Snapshots of every live connection, by id.
    pub fn connections(&self) -> Vec<(ConnId, ConnStats)> {
        let conns = self.inner.registry().all_conns();
        let mut out: Vec<_> = conns.iter().map(|c| (c.id, c.stats())).collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Counters since the transport started.
    pub fn totals(&self) -> TransportTotals {
        self.inner.totals.snapshot(self.inner.config.tls.rejected())
    }

    /// Closes every connection, stops dialling and accepting, and waits (up to
    /// a few seconds) for the tasks to end. Other clones of the handle stop
    /// working. The UDP port is free again shortly after this returns.
    pub async fn shutdown(self) {
        let inner = self.inner.clone();
        inner.begin_shutdown();
        let mut tasks = std::mem::take(&mut *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        // The close frames went out while the tasks wound down; what is left is
        // QUIC's draining period, in which a peer that missed the close would
        // be told again. Worth a moment, not the full period.
        let _ = tokio::time::timeout(DRAIN_GRACE, inner.endpoint.wait_idle()).await;
        tracing::info!(name = %inner.local_name, "gossip transport stopped");
    }
}

async fn accept_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown_signal();
    loop {
        let incoming = tokio::select! {
            incoming = inner.endpoint.accept() => incoming,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(incoming) = incoming else {
            break;
        };
        match inner.handshakes.clone().try_acquire_owned() {
            Ok(permit) => {
                let task_inner = inner.clone();
                inner.spawn(conn::accept(task_inner, incoming, permit));
            }
            Err(_) => {
                tracing::debug!(remote = %incoming.remote_address(), "too many handshakes in progress; refusing");
                incoming.refuse();
            }
        }
    }
}
