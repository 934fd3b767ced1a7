//! Shared helpers for black-box tests: start real `veto serve` processes on free
//! loopback ports and talk to them over real HTTP.

#![allow(dead_code, unreachable_pub)]

pub mod enforcement;
pub mod envoy;
pub mod gateways;
pub mod mesh;
pub mod netns;
pub mod regions;

pub use gateways::*;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::blocking::{Client, Response};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A free TCP port on loopback, for a server a test starts.
pub fn free_port() -> u16 {
    pick_port(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// A free UDP port on loopback, for a gossip endpoint a test starts.
pub fn free_udp_port() -> u16 {
    pick_port(|port| std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok())
}

/// Picks a port below the kernel's ephemeral range that `is_free` can bind.
///
/// A port asked of the kernel with `:0` comes from the ephemeral range, and
/// the kernel hands the same range to every client socket: a relay's
/// upstream socket or an HTTP connection can take a picked port before the
/// node binds it, and a gossip port is fixed in the node's flags, so a retry
/// on a new HTTP port cannot help. Below that range only explicit binds
/// land, and within one test process the walk never picks a port twice.
fn pick_port(is_free: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_start().max(LOW + 1_000);
    let span = high - LOW;
    // Test binaries of one run follow each other; start each at its own
    // place so that a port the last one left in TIME_WAIT is not the first.
    let start = (std::process::id().wrapping_mul(7_919)) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % span) as u16;
        if is_free(port) {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{high}")
}

/// The first port of the kernel's ephemeral range (32768 when unreadable).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

pub fn veto_bin() -> &'static str {
    env!("CARGO_BIN_EXE_veto")
}

/// How long a node started by these helpers may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Why a node did not become ready.
#[derive(Debug)]
enum NotReady {
    /// The process ended first.
    Exited(std::process::ExitStatus),
    /// It still runs, but `/readyz` did not answer 200 in time.
    TimedOut { limit: Duration, last: String },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "exited ({status}) before it was ready"),
            NotReady::TimedOut { limit, last } => {
                write!(f, "not ready within {limit:?}; /readyz last said: {last}")
            }
        }
    }
}

/// A running `veto serve` child process.
pub struct Veto {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub http: Client,
    pub args: Vec<String>,
    /// Extra environment for the process (kept across restarts).
    pub env: Vec<(String, String)>,
}

impl Veto {
    /// Starts a node on `data_dir` with extra flags and waits until it is ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Veto {
        let mut args = vec![
            "--gossip-listen".to_owned(),
            format!("127.0.0.1:{}", free_udp_port()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_with(data_dir, &args)
    }

    fn spawn(data_dir: &Path, args: Vec<String>, port: u16) -> Veto {
        Self::spawn_env(data_dir, args, port, Vec::new())
    }

    fn spawn_env(
        data_dir: &Path,
        args: Vec<String>,
        port: u16,
        env: Vec<(String, String)>,
    ) -> Veto {
        let mut veto = Self::launch(data_dir, args, port, env);
        veto.wait_ready(READY_WITHIN);
        veto
    }

    /// Starts the process without waiting for it to be ready.
    fn launch(data_dir: &Path, args: Vec<String>, port: u16, env: Vec<(String, String)>) -> Veto {
        let child = Command::new(veto_bin())
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "RUST_LOG",
                std::env::var("VETO_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn veto");
        Veto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            args,
            env,
        }
    }

    /// The sum of every series of a metric in `/metrics` (0 if none); a
    /// `name` with labels (`veto_x{result="ok"}`) picks that series alone.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text().unwrap();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Restarts the node with the same flags, environment and data dir (after
    /// a kill or stop).
    pub fn restart(self) -> Veto {
        self.restart_env(None)
    }

    /// Restarts the node with the same flags and data dir, and `env` instead
    /// of the environment it had, if given.
    pub fn restart_env(mut self, env: Option<Vec<(String, String)>>) -> Veto {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port();
        let args = std::mem::take(&mut self.args);
        let env = env.unwrap_or_else(|| std::mem::take(&mut self.env));
        Self::spawn_env(&self.data_dir.clone(), args, port, env)
    }

    /// Waits until `/readyz` answers 200; panics, saying why, if the
    /// process exits first or `limit` passes.
    pub fn wait_ready(&mut self, limit: Duration) {
        if let Err(why) = self.ready_within(limit) {
            panic!("veto at {} {why}", self.url);
        }
    }

    /// Waits until `/readyz` answers 200, the process exits, or `limit`
    /// passes, whichever comes first.
    fn ready_within(&mut self, limit: Duration) -> Result<(), NotReady> {
        let started = Instant::now();
        loop {
            let last = match self.http.get(format!("{}/readyz", self.url)).send() {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("{}: {}", r.status(), r.text().unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(NotReady::Exited(status));
            }
            if started.elapsed() >= limit {
                return Err(NotReady::TimedOut { limit, last });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "veto exited with {status}");
    }

    pub fn get(&self, path: &str) -> Response {
        self.http.get(format!("{}{path}", self.url)).send().unwrap()
    }

    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().unwrap()
    }

    pub fn admin_get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap()
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .unwrap()
    }

    /// Revokes and asserts 201; returns the record.
    pub fn revoke(&self, body: Value) -> Value {
        let r = self.post_json("/v1/revocations", &body);
        let status = r.status();
        let text = r.text().unwrap();
        assert_eq!(status, 201, "revoke {body}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// `GET /v1/check` with these query pairs; returns whether revoked.
    pub fn revoked(&self, query: &[(&str, &str)]) -> bool {
        let r = self
            .http
            .get(format!("{}/v1/check", self.url))
            .query(query)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "check {query:?}");
        let v: Value = r.json().unwrap();
        v["revoked"].as_bool().unwrap()
    }
}

impl Drop for Veto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An unsigned JWT with these claims (veto never checks signatures).
pub fn jwt(header: Value, claims: Value) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Makes a cluster CA and a certificate for each name with the real `veto cert`.
pub fn make_certs(dir: &Path, names: &[&str]) {
    let run = |args: &[&str]| {
        let out = Command::new(veto_bin()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "veto {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let d = dir.display().to_string();
    run(&["cert", "ca", "--out", &d]);
    for name in names {
        run(&["cert", "node", "--ca-dir", &d, "--name", name, "--out", &d]);
    }
}

/// Flags for a TLS-enabled node named `name` whose certificates are in `certs`.
pub fn tls_args(certs: &Path, name: &str, gossip_port: u16, region: &str) -> Vec<String> {
    let c = |f: &str| certs.join(f).display().to_string();
    vec![
        "--name".into(),
        name.into(),
        "--region".into(),
        region.into(),
        "--tls-ca".into(),
        c("ca.pem"),
        "--tls-cert".into(),
        c(&format!("{name}.pem")),
        "--tls-key".into(),
        c(&format!("{name}.key")),
        "--gossip-listen".into(),
        format!("127.0.0.1:{gossip_port}"),
        "--anti-entropy-ms".into(),
        "500".into(),
    ]
}

impl Veto {
    /// Starts a node with explicit flags (no default gossip port).
    pub fn start_with(data_dir: &Path, args: &[String]) -> Veto {
        Self::start_env(data_dir, args, Vec::new())
    }

    /// Starts a node with explicit flags and extra environment variables.
    ///
    /// The HTTP port is picked free, but another process may take it before
    /// veto binds it (tests run in parallel, and every client connection
    /// takes an ephemeral port): a node that exits before it is ready is
    /// started again on a fresh port, twice at most.
    pub fn start_env(data_dir: &Path, args: &[String], env: Vec<(String, String)>) -> Veto {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let all = serve_args(data_dir, port, args);
            let mut veto = Self::launch(data_dir, all, port, env.clone());
            match veto.ready_within(READY_WITHIN) {
                Ok(()) => return veto,
                Err(NotReady::Exited(status)) if attempt < ATTEMPTS => {
                    eprintln!(
                        "veto at {} exited ({status}) before it was ready; starting it again on another port",
                        veto.url
                    );
                }
                Err(why) => panic!("veto at {} {why}", veto.url),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts a node without waiting for it to be ready (for a start that
    /// fails, or to watch it while it loads).
    pub fn launch_with(data_dir: &Path, args: &[String]) -> Veto {
        let port = free_port();
        Self::launch(data_dir, serve_args(data_dir, port, args), port, Vec::new())
    }

    pub fn status(&self) -> Value {
        self.get_json("/v1/status")
    }

    pub fn digest(&self) -> String {
        self.status()["digest"].as_str().unwrap().to_owned()
    }
}

fn serve_args(data_dir: &Path, port: u16, args: &[String]) -> Vec<String> {
    let mut all: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    all.extend(args.iter().cloned());
    all
}

/// Copies a directory tree (a data dir taken as a backup, or cloned).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Polls `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `veto-relay` child process between two nodes, with its control port.
pub struct Relay {
    pub child: Child,
    pub listen: u16,
    pub control: u16,
}

impl Relay {
    /// Relays UDP from a free loopback port to `to_port`.
    pub fn start(to_port: u16, seed: u64) -> Relay {
        let listen = free_udp_port();
        let control = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_veto-relay"))
            .args([
                "--listen",
                &format!("127.0.0.1:{listen}"),
                "--to",
                &format!("127.0.0.1:{to_port}"),
            ])
            .args([
                "--control",
                &format!("127.0.0.1:{control}"),
                "--seed",
                &seed.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn veto-relay");
        let relay = Relay {
            child,
            listen,
            control,
        };
        eventually(Duration::from_secs(10), "relay control port", || {
            std::net::TcpStream::connect(("127.0.0.1", control)).is_ok()
        });
        relay
    }

    /// Sends one control command and returns the reply line.
    pub fn command(&self, line: &str) -> String {
        use std::io::{BufRead as _, BufReader, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.control)).unwrap();
        writeln!(stream, "{line}").unwrap();
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).unwrap();
        assert!(reply.starts_with("ok"), "relay {line:?}: {reply}");
        reply
    }
}

/// The two relays of one link between two nodes, one for each side's dial:
/// both nodes list each other (a node accepts a dial-in only from a peer it
/// lists), and the connection kept may be either one's, so a fault must be
/// on both paths. A command goes to both.
pub struct Link {
    /// Relays to the far node: the near node dials this one.
    pub there: Relay,
    /// Relays to the near node: the far node dials this one.
    pub back: Relay,
}

impl Link {
    /// A link between the nodes at `near_port` and `far_port`.
    pub fn start(near_port: u16, far_port: u16, seed: u64) -> Link {
        Link {
            there: Relay::start(far_port, seed),
            back: Relay::start(near_port, seed.wrapping_add(1_000)),
        }
    }

    /// Sends one control command to both relays; returns the first's reply.
    pub fn command(&self, line: &str) -> String {
        let reply = self.there.command(line);
        self.back.command(line);
        reply
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
