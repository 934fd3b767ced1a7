//! `veto relay`: a UDP relay that injects network faults, for tests and benchmarks.
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Extra hold of a packet picked for reordering.
const REORDER_HOLD: Duration = Duration::from_millis(20);
/// Bytes one control connection may send in all; it is a tool for scripts.
const CONTROL_INPUT_LIMIT: u64 = 1 << 20;

/// Settings of `veto relay`.
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

/// Which packets a partition drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Partition {
    /// None.
    #[default]
    Off,
    /// All.
    On,
    /// Client to target only.
    Up,
    /// Target to client only.
    Down,
}

impl Partition {
    fn blocks(self, dir: Direction) -> bool {
        matches!(
            (self, dir),
            (Partition::On, _)
                | (Partition::Up, Direction::Up)
                | (Partition::Down, Direction::Down)
        )
    }
}

/// The faults applied to every packet, in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Default, clap::Args)]
pub(crate) struct Faults {
    /// Drop packets: `on` (or the bare flag) both ways, `up` client to target, `down` back.
    #[arg(long, value_enum, default_value = "off", num_args = 0..=1, default_missing_value = "on")]
    pub(crate) partition: Partition,
    /// Probability of dropping a packet, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub(crate) loss: f64,
    /// Delay of every packet, each way, in milliseconds.
    #[arg(long = "delay", default_value_t = 0)]
    pub(crate) delay_ms: u64,
    /// Spread of the delay: plus or minus this many milliseconds, uniformly.
    #[arg(long = "jitter", default_value_t = 0)]
    pub(crate) jitter_ms: u64,
    /// Probability of sending a packet twice, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub(crate) dup: f64,
    /// Probability of holding a packet back 20 ms so later ones overtake it, 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub(crate) reorder: f64,
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition={} loss={} delay={} jitter={} dup={} reorder={}",
            clap::ValueEnum::to_possible_value(&self.partition)
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default(),
            self.loss,
            self.delay_ms,
            self.jitter_ms,
            self.dup,
            self.reorder
        )
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability between 0 and 1")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// Where a packet goes: up through a client's own socket, or down to a client.
#[derive(Clone)]
enum Route {
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
struct Shared {
    listen: Arc<UdpSocket>,
    to: SocketAddr,
    faults: Mutex<Faults>,
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
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn bump(&self, stat: Stat) {
        self.stats[stat as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Applies the faults to one packet: drops it, or sends or holds each copy.
    async fn forward(&self, dir: Direction, route: Route, data: &[u8]) {
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
    fn session(self: &Arc<Self>, client: SocketAddr) -> io::Result<Option<Arc<UdpSocket>>> {
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

    fn stats_line(&self) -> String {
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
async fn release_held(shared: Arc<Shared>) {
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
async fn sweep_sessions(shared: Arc<Shared>, idle: Duration) {
    let period = (idle / 2).max(Duration::from_secs(1));
    let idle_ms = idle.as_millis() as u64;
    loop {
        tokio::time::sleep(period).await;
        let now = shared.now_ms();
        lock(&shared.sessions)
            .retain(|_, s| now.saturating_sub(s.last_seen.load(Ordering::Relaxed)) < idle_ms);
    }
}

enum Reply {
    Line(String),
    Quit,
}

/// Runs one control command and returns the reply line.
fn command(shared: &Shared, line: &str) -> Reply {
    let words: Vec<String> = line
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut faults = *lock(&shared.faults);
    let millis = |w: &str| {
        w.parse::<u64>()
            .map_err(|_| format!("{w:?} is not a number of milliseconds"))
    };
    let result: Result<(), String> = match words.as_slice() {
        [] => return Reply::Line(String::new()),
        ["quit" | "exit"] => return Reply::Quit,
        ["stats"] => return Reply::Line(format!("ok {}", shared.stats_line())),
        ["faults" | "show"] => return Reply::Line(format!("ok {faults}")),
        ["help"] => {
            return Reply::Line(
                "ok commands: partition on|off|up|down, loss P, delay MS [JITTER], jitter MS, \
                 dup P, reorder P, clear, faults, stats, quit"
                    .into(),
            )
        }
        ["partition", w] => <Partition as clap::ValueEnum>::from_str(w, true)
            .ok()
            .map(|p| faults.partition = p)
            .ok_or_else(|| "partition takes on, off, up or down".to_owned()),
        ["loss", w] => parse_probability(w).map(|p| faults.loss = p),
        ["dup", w] => parse_probability(w).map(|p| faults.dup = p),
        ["reorder", w] => parse_probability(w).map(|p| faults.reorder = p),
        ["delay", w] => millis(w).map(|ms| faults.delay_ms = ms),
        ["delay", w, j] => millis(w).and_then(|ms| {
            faults.delay_ms = ms;
            millis(j).map(|j| faults.jitter_ms = j)
        }),
        ["jitter", w] => millis(w).map(|ms| faults.jitter_ms = ms),
        ["clear" | "reset"] => {
            faults = Faults::default();
            Ok(())
        }
        [cmd, ..] => Err(format!(
            "unknown command or wrong arguments: {cmd} (try help)"
        )),
    };
    match result {
        Ok(()) => {
            *lock(&shared.faults) = faults;
            tracing::info!(%faults, "relay faults changed");
            Reply::Line(format!("ok {faults}"))
        }
        Err(e) => Reply::Line(format!("err {e}")),
    }
}

async fn control_session(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader.take(CONTROL_INPUT_LIMIT)).lines();
    while let Some(line) = lines.next_line().await? {
        match command(&shared, &line) {
            Reply::Quit => break,
            Reply::Line(reply) if reply.is_empty() => {}
            Reply::Line(reply) => {
                writer.write_all(reply.as_bytes()).await?;
                writer.write_all(b"\n").await?;
            }
        }
    }
    writer.shutdown().await
}

async fn control_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Sessions live in this set, so they end with the relay.
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                sessions.spawn(control_session(stream, shared.clone()));
            }
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "relay control accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
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
        let listen = Arc::new(UdpSocket::bind(config.listen).await?);
        let control = match config.control {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let seed = config.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, faults = %config.faults, "relay rng seeded");
        let shared = Arc::new(Shared {
            listen,
            to: config.to,
            faults: Mutex::new(config.faults),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            stats: Default::default(),
            held: Mutex::new(BTreeMap::new()),
            next_seq: AtomicU64::new(0),
            wake: Notify::new(),
            max_queue: config.max_queue,
            max_clients: config.max_clients.max(1),
            sessions: Mutex::new(HashMap::new()),
            started: Instant::now(),
        });
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
        // Sessions hold the shared state through their reader tasks; clear them
        // on the way out, or those tasks would keep each other alive.
        struct ClearSessions(Arc<Shared>);
        impl Drop for ClearSessions {
            fn drop(&mut self) {
                lock(&self.0.sessions).clear();
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

/// Runs `veto relay` until its socket fails.
pub(crate) async fn run(config: RelayConfig) -> io::Result<()> {
    let relay = Relay::bind(config.clone()).await?;
    tracing::info!(
        listen = %relay.local_addr()?,
        to = %config.to,
        control = ?relay.control_addr(),
        "relay running"
    );
    relay.serve().await
}
