//! `veto-relay`: a UDP relay that injects network faults, for tests and benchmarks.
//!
//! It listens on `--listen`, forwards every datagram to `--to`, and routes the
//! replies back: each client address gets its own upstream socket, so the target
//! sees one distinct peer per client. Point a node's `--peer` at the relay
//! instead of at the other node, and the QUIC connection between them runs
//! through whatever faults are set.
//!
//! Faults apply to each direction separately ("up" is client to target, "down"
//! is target to client): a 50 ms delay adds 100 ms to a round trip.
//!
//! - `partition`: `on` drops everything, `up`/`down` only one direction. Packets
//!   already held for delay are dropped too when they come due.
//! - `loss P`: drop each packet with probability P.
//! - `delay MS [JITTER]`: hold each packet MS milliseconds, give or take a
//!   uniformly drawn JITTER (which reorders packets when it exceeds their spacing).
//! - `dup P`: send a second copy with probability P.
//! - `reorder P`: hold a packet an extra 20 ms with probability P, so those
//!   behind it overtake it.
//!
//! Set them by flags at start, or at run time on the control port (`--control
//! ADDR`, TCP, one command per line, one reply line each, `ok ...` or `err ...`):
//!
//! ```text
//! partition on|off|up|down    loss 0.05    delay 50 [10]    jitter 10
//! dup 0.01    reorder 0.1    clear    faults    stats    help    quit
//! ```
//!
//! e.g. `echo "partition on" | nc 127.0.0.1 7499`; settings answer with the
//! faults now in force. Random draws come from one rng seeded by `--seed` (random, and logged, when
//! not given). Memory is bounded: at most `--max-queue` packets are held for
//! delay (more are dropped and counted as overflow), at most `--max-clients`
//! client sessions exist, and sessions idle for `--idle-secs` are forgotten.

mod control;
mod faults;
mod shared;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use control::control_loop;
use faults::Direction;
pub(crate) use faults::Faults;
#[allow(unused_imports)] // for tests that drive the relay in-process
pub(crate) use faults::Partition;
use shared::{release_held, sweep_sessions, Route, Shared, MAX_DATAGRAM};

/// Settings of `veto-relay`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RelayConfig {
    /// UDP address to receive client packets on.
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// UDP address to forward them to.
    #[arg(long)]
    pub(crate) to: SocketAddr,
    /// TCP address of the line-based control port; none when not given.
    #[arg(long)]
    pub(crate) control: Option<SocketAddr>,
    /// Seed of the fault rng; random (and logged) when not given.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Most packets held for delay at once, both directions together.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_queue: usize,
    /// Most client addresses served at once.
    #[arg(long, default_value_t = 1024)]
    pub(crate) max_clients: usize,
    /// Forget a client after this many seconds without traffic.
    #[arg(long, default_value_t = 60)]
    pub(crate) idle_secs: u64,
    /// The faults in force at start.
    #[command(flatten)]
    pub(crate) faults: Faults,
}

/// A bound relay, ready to [`Relay::serve`].
pub(crate) struct Relay {
    shared: Arc<Shared>,
    control: Option<TcpListener>,
    idle: Duration,
}

impl Relay {
    /// Binds the UDP and control sockets.
    pub(crate) async fn bind(config: RelayConfig) -> io::Result<Relay> {
        let f = &config.faults;
        if ![f.loss, f.dup, f.reorder]
            .iter()
            .all(|p| (0.0..=1.0).contains(p))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "loss, dup and reorder must be between 0 and 1",
            ));
        }
        let listen = UdpSocket::bind(config.listen).await?;
        veto_transport::widen_udp_buffers(&listen)?;
        let control = match config.control {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let seed = config.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, faults = %config.faults, "relay rng seeded");
        let shared = Arc::new(Shared::new(
            listen,
            config.to,
            config.faults,
            seed,
            config.max_queue,
            config.max_clients,
        ));
        Ok(Relay {
            shared,
            control,
            idle: Duration::from_secs(config.idle_secs.max(1)),
        })
    }

    /// The UDP address clients send to.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.listen.local_addr()
    }

    /// The control port's address, if there is one.
    pub(crate) fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().and_then(|c| c.local_addr().ok())
    }

    /// Relays until the listening socket fails. Dropping the future stops
    /// everything, sessions and control connections included.
    pub(crate) async fn serve(self) -> io::Result<()> {
        let shared = self.shared;
        let mut tasks = JoinSet::new();
        tasks.spawn(release_held(shared.clone()));
        tasks.spawn(sweep_sessions(shared.clone(), self.idle));
        if let Some(control) = self.control {
            tasks.spawn(control_loop(control, shared.clone()));
        }
        // Clear the sessions on the way out, or their reader tasks would keep
        // each other alive.
        struct ClearSessions(Arc<Shared>);
        impl Drop for ClearSessions {
            fn drop(&mut self) {
                self.0.clear_sessions();
            }
        }
        let _clear = ClearSessions(shared.clone());

        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, client) = match shared.listen.recv_from(&mut buf).await {
                Ok(received) => received,
                // ICMP errors about a client that went away (reported on some
                // platforms): that client's problem, not the relay's.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let upstream = match shared.session(client) {
                Ok(Some(upstream)) => upstream,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%client, error = %e, "relay cannot open an upstream socket");
                    continue;
                }
            };
            shared
                .forward(Direction::Up, Route::Up(upstream), &buf[..n])
                .await;
        }
    }
}
