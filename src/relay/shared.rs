//! The relay's shared state: client sessions, the fault rng, packets held
//! for delay, and the tasks that move packets.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::faults::{Direction, Faults};

/// Largest UDP payload.
pub(super) const MAX_DATAGRAM: usize = 65_535;
/// Extra hold of a packet picked for reordering.
const REORDER_HOLD: Duration = Duration::from_millis(20);

/// Where a packet goes: up through a client's own socket, or down to a client.
#[derive(Clone)]
pub(super) enum Route {
    Up(Arc<UdpSocket>),
    Down(SocketAddr),
}

/// Counters shown by the `stats` command, in this order.
#[derive(Clone, Copy)]
enum Stat {
    UpIn,
    UpOut,
    DownIn,
    DownOut,
    DroppedPartition,
    DroppedLoss,
    Duplicated,
    Delayed,
    Reordered,
    Overflow,
    RefusedClients,
    SendErrors,
}

const STAT_NAMES: [&str; 12] = [
    "up_in",
    "up_out",
    "down_in",
    "down_out",
    "dropped_partition",
    "dropped_loss",
    "duplicated",
    "delayed",
    "reordered",
    "overflow",
    "refused_clients",
    "send_errors",
];

/// A packet held for delay, filed under (due time, arrival number) so that
/// packets due at the same instant leave in the order they came.
struct Held {
    dir: Direction,
    route: Route,
    data: Vec<u8>,
}

struct Session {
    upstream: Arc<UdpSocket>,
    last_seen: Arc<AtomicU64>,
    reader: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// State shared by the relay's tasks.
pub(super) struct Shared {
    pub(super) listen: Arc<UdpSocket>,
    to: SocketAddr,
    pub(super) faults: Mutex<Faults>,
    rng: Mutex<StdRng>,
    stats: [AtomicU64; STAT_NAMES.len()],
    held: Mutex<BTreeMap<(Instant, u64), Held>>,
    next_seq: AtomicU64,
    wake: Notify,
    max_queue: usize,
    max_clients: usize,
    sessions: Mutex<HashMap<SocketAddr, Session>>,
    started: Instant,
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The state of a relay listening on `listen` for `to`.
    pub(super) fn new(
        listen: UdpSocket,
        to: SocketAddr,
        faults: Faults,
        seed: u64,
        max_queue: usize,
        max_clients: usize,
    ) -> Shared {
        Shared {
            listen: Arc::new(listen),
            to,
            faults: Mutex::new(faults),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            stats: Default::default(),
            held: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(0),
            wake: Notify::new(),
            max_queue,
            max_clients: max_clients.max(1),
            sessions: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    /// Forgets every client session. Sessions hold the shared state through
    /// their reader tasks, so they must be cleared for it to be freed.
    pub(super) fn clear_sessions(&self) {
        lock(&self.sessions).clear();
    }

    fn bump(&self, stat: Stat) {
        self.stats[stat as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Applies the faults to one packet: drops it, or sends or holds each copy.
    pub(super) async fn forward(&self, dir: Direction, route: Route, data: &[u8]) {
        self.bump(match dir {
            Direction::Up => Stat::UpIn,
            Direction::Down => Stat::DownIn,
        });
        let faults = *lock(&self.faults);
        if faults.partition.blocks(dir) {
            self.bump(Stat::DroppedPartition);
            return;
        }
        let mut delays = [None, None];
        {
            let mut rng = lock(&self.rng);
            if rng.gen::<f64>() < faults.loss {
                self.bump(Stat::DroppedLoss);
                return;
            }
            let copies = if rng.gen::<f64>() < faults.dup { 2 } else { 1 };
            for slot in delays.iter_mut().take(copies) {
                let low = faults.delay_ms.saturating_sub(faults.jitter_ms);
                let high = faults.delay_ms.saturating_add(faults.jitter_ms);
                let mut delay = Duration::from_millis(rng.gen_range(low..=high));
                if rng.gen::<f64>() < faults.reorder {
                    self.bump(Stat::Reordered);
                    delay += REORDER_HOLD;
                }
                *slot = Some(delay);
            }
        }
        if delays[1].is_some() {
            self.bump(Stat::Duplicated);
        }
        for delay in delays.into_iter().flatten() {
            if delay.is_zero() {
                self.send(dir, &route, data).await;
            } else {
                self.hold(dir, route.clone(), data, delay);
            }
        }
    }

    fn hold(&self, dir: Direction, route: Route, data: &[u8], delay: Duration) {
        {
            let mut held = lock(&self.held);
            if held.len() >= self.max_queue {
                self.bump(Stat::Overflow);
                return;
            }
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let packet = Held {
                dir,
                route,
                data: data.to_vec(),
            };
            held.insert((Instant::now() + delay, seq), packet);
        }
        self.bump(Stat::Delayed);
        self.wake.notify_one();
    }

    async fn send(&self, dir: Direction, route: &Route, data: &[u8]) {
        let sent = match route {
            Route::Up(socket) => socket.send(data).await,
            Route::Down(client) => self.listen.send_to(data, client).await,
        };
        match (sent, dir) {
            (Ok(_), Direction::Up) => self.bump(Stat::UpOut),
            (Ok(_), Direction::Down) => self.bump(Stat::DownOut),
            (Err(_), _) => self.bump(Stat::SendErrors),
        }
    }

    /// The upstream socket of `client`, made on its first packet.
    pub(super) fn session(
        self: &Arc<Self>,
        client: SocketAddr,
    ) -> io::Result<Option<Arc<UdpSocket>>> {
        let mut sessions = lock(&self.sessions);
        if let Some(session) = sessions.get(&client) {
            session.last_seen.store(self.now_ms(), Ordering::Relaxed);
            return Ok(Some(session.upstream.clone()));
        }
        if sessions.len() >= self.max_clients {
            self.bump(Stat::RefusedClients);
            return Ok(None);
        }
        let any: IpAddr = match self.to {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = std::net::UdpSocket::bind((any, 0))?;
        socket.connect(self.to)?;
        socket.set_nonblocking(true)?;
        veto_transport::widen_udp_buffers(&socket)?;
        let upstream = Arc::new(UdpSocket::from_std(socket)?);
        let last_seen = Arc::new(AtomicU64::new(self.now_ms()));
        let reader = tokio::spawn(read_upstream(
            self.clone(),
            upstream.clone(),
            client,
            last_seen.clone(),
        ));
        sessions.insert(
            client,
            Session {
                upstream: upstream.clone(),
                last_seen,
                reader,
            },
        );
        Ok(Some(upstream))
    }

    pub(super) fn stats_line(&self) -> String {
        let mut line = String::new();
        for (name, value) in STAT_NAMES.iter().zip(&self.stats) {
            line.push_str(&format!("{name}={} ", value.load(Ordering::Relaxed)));
        }
        let sessions = lock(&self.sessions).len();
        let queued = lock(&self.held).len();
        line + &format!("sessions={sessions} queued={queued}")
    }
}

/// Replies to the client of one session.
async fn read_upstream(
    shared: Arc<Shared>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    last_seen: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(n) => {
                last_seen.store(shared.now_ms(), Ordering::Relaxed);
                shared
                    .forward(Direction::Down, Route::Down(client), &buf[..n])
                    .await;
            }
            // An ICMP "port unreachable" from a target that is down: it may come back.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::warn!(%client, error = %e, "relay upstream socket failed");
                return;
            }
        }
    }
}

/// Sends held packets when they come due.
pub(super) async fn release_held(shared: Arc<Shared>) {
    loop {
        let (due, next) = {
            let mut held = lock(&shared.held);
            let now = Instant::now();
            let mut due = Vec::new();
            while held
                .first_key_value()
                .is_some_and(|((at, _), _)| *at <= now)
            {
                if let Some((_, h)) = held.pop_first() {
                    due.push(h);
                }
            }
            (due, held.first_key_value().map(|((at, _), _)| *at))
        };
        for h in due {
            if lock(&shared.faults).partition.blocks(h.dir) {
                shared.bump(Stat::DroppedPartition);
                continue;
            }
            shared.send(h.dir, &h.route, &h.data).await;
        }
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

/// Forgets clients that went quiet, closing their upstream sockets.
pub(super) async fn sweep_sessions(shared: Arc<Shared>, idle: Duration) {
    let period = (idle / 2).max(Duration::from_secs(1));
    let idle_ms = idle.as_millis() as u64;
    loop {
        tokio::time::sleep(period).await;
        let now = shared.now_ms();
        lock(&shared.sessions)
            .retain(|_, s| now.saturating_sub(s.last_seen.load(Ordering::Relaxed)) < idle_ms);
    }
}
