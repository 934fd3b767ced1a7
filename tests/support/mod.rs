//! Shared helpers for black-box tests: start real `veto serve` processes on free
//! loopback ports and talk to them over real HTTP.

#![allow(dead_code, unreachable_pub)]

pub mod enforcement;
pub mod envoy;
pub mod mesh;
pub mod regions;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::blocking::{Client, Response};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A free TCP port on loopback (the OS may hand it out again later, but not
/// while tests in one process pick ports one after another).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn veto_bin() -> &'static str {
    env!("CARGO_BIN_EXE_veto")
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
        let veto = Self::launch(data_dir, args, port, env);
        veto.wait_ready(Duration::from_secs(30));
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

    pub fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                started.elapsed() < limit,
                "veto at {} not ready within {limit:?}",
                self.url
            );
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
    pub fn start_env(data_dir: &Path, args: &[String], env: Vec<(String, String)>) -> Veto {
        let port = free_port();
        Self::spawn_env(data_dir, serve_args(data_dir, port, args), port, env)
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

// Real gateways (nginx, Envoy) and real client libraries (Python's Authlib).
// A test that cannot find one skips with a message, unless
// VETO_REQUIRE_GATEWAYS=1 is set (as in CI), when it fails instead.

/// How to get the gateways and client libraries the tests run against.
pub const INSTALL_HINT: &str = "install them with `sudo scripts/install-test-deps.sh` \
     (or set VETO_NGINX_BIN / VETO_ENVOY_BIN / VETO_PYTHON)";

/// Whether a missing gateway fails the test instead of skipping it.
pub fn gateways_required() -> bool {
    std::env::var("VETO_REQUIRE_GATEWAYS").is_ok_and(|v| v == "1")
}

/// `found` if it is there. Otherwise panics under `VETO_REQUIRE_GATEWAYS=1`, or
/// prints why the test is skipped and returns `None` (the caller returns early).
pub fn require_gateway<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_some() {
        return found;
    }
    let msg = format!("{what} not found; {INSTALL_HINT}");
    assert!(!gateways_required(), "VETO_REQUIRE_GATEWAYS=1 and {msg}");
    eprintln!("SKIPPED: {msg}");
    None
}

/// An executable named `name` on PATH or in the sbin directories (where Debian
/// puts nginx, and which a non-root PATH often lacks).
pub fn find_executable(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The nginx binary: `VETO_NGINX_BIN`, else `nginx` on PATH or in sbin.
pub fn nginx_bin() -> Option<PathBuf> {
    match std::env::var_os("VETO_NGINX_BIN") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => find_executable("nginx"),
    }
}

/// The Python interpreter for client-library tests: `VETO_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("VETO_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether `python() -c <code>` runs cleanly (e.g. `import authlib`).
pub fn python_runs(code: &str) -> bool {
    Command::new(python())
        .args(["-c", code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// An HTTP client for talking to gateways: no proxy from the environment, and no
/// redirects, so every status is the gateway's own.
pub fn gateway_client() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `GET url` with `Authorization: Bearer <token>` when a token is given.
pub fn get_with_bearer(client: &Client, url: &str, token: Option<&str>) -> Response {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

/// A tiny HTTP/1.1 upstream for the gateways to protect. It answers every request
/// with 200 and a line saying what it saw, and counts the requests that reached it.
pub struct Upstream {
    pub port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || serve_upstream(stream, &counter));
            }
        });
        Upstream { port, hits }
    }

    /// Requests that reached the upstream so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Serves keep-alive requests on one connection until the peer closes it.
fn serve_upstream(stream: std::net::TcpStream, hits: &std::sync::atomic::AtomicUsize) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let (mut length, mut authorization) = (0usize, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "authorization" => authorization = true,
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let text =
            format!("upstream {method} {path} body={length} authorization={authorization}\n");
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Replaces `from` in `text`, insisting it is there: a changed example config
/// must break the test that runs it, not silently test something else.
pub fn replace_in_config(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the example config no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// A real nginx (master in the foreground, one worker) running
/// `examples/nginx/veto.conf` with its addresses pointed at a test's veto and
/// upstream, on a free loopback port, with everything it writes in `dir`.
pub struct Nginx {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Nginx {
    pub fn start(bin: &Path, dir: &Path, veto_port: u16, upstream_port: u16) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx/veto.conf");
        let site = std::fs::read_to_string(&example).unwrap();
        let site = replace_in_config(&site, "127.0.0.1:7400", &format!("127.0.0.1:{veto_port}"));
        let site = replace_in_config(
            &site,
            "127.0.0.1:8080",
            &format!("127.0.0.1:{upstream_port}"),
        );
        let site = replace_in_config(
            &site,
            "listen 127.0.0.1:8000",
            &format!("listen 127.0.0.1:{port}"),
        );
        std::fs::write(dir.join("veto.conf"), site).unwrap();
        let d = dir.display();
        // Started as root, nginx would run its worker as `nobody`, which cannot
        // enter a private temp dir.
        let user = if running_as_root() { "user root;" } else { "" };
        let conf = format!(
            "{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/veto.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited with {status} before listening:\n{log}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nginx not listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: a killed master leaves its worker running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
