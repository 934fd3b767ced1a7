//! Shared helpers for black-box tests: start real `veto serve` processes on free
//! loopback ports and talk to them over real HTTP.

#![allow(dead_code, unreachable_pub)]

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
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
}

impl Veto {
    /// Starts a node on `data_dir` with extra flags and waits until it is ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Veto {
        let port = free_port();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--gossip-listen".into(),
            format!("127.0.0.1:{}", free_udp_port()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(data_dir, args, port)
    }

    fn spawn(data_dir: &Path, args: Vec<String>, port: u16) -> Veto {
        let child = Command::new(veto_bin())
            .args(&args)
            .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", std::env::var("VETO_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn veto");
        let veto = Veto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            http: Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            args,
        };
        veto.wait_ready(Duration::from_secs(30));
        veto
    }

    /// Restarts the node with the same flags and data dir (after a kill or stop).
    pub fn restart(mut self) -> Veto {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let args = std::mem::take(&mut self.args);
        Self::spawn(&self.data_dir.clone(), args, port)
    }

    pub fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.url)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(started.elapsed() < limit, "veto at {} not ready within {limit:?}", self.url);
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
        self.http.get(format!("{}{path}", self.url)).bearer_auth(ADMIN_TOKEN).send().unwrap()
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http.post(format!("{}{path}", self.url)).bearer_auth(ADMIN_TOKEN).json(body).send().unwrap()
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
        let r = self.http.get(format!("{}/v1/check", self.url)).query(query).send().unwrap();
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
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Makes a cluster CA and a certificate for each name with the real `veto cert`.
pub fn make_certs(dir: &Path, names: &[&str]) {
    let run = |args: &[&str]| {
        let out = Command::new(veto_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "veto {args:?}: {}", String::from_utf8_lossy(&out.stderr));
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
        let port = free_port();
        let mut all: Vec<String> = vec![
            "serve".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        all.extend(args.iter().cloned());
        Self::spawn(data_dir, all, port)
    }

    pub fn status(&self) -> Value {
        self.get_json("/v1/status")
    }

    pub fn digest(&self) -> String {
        self.status()["digest"].as_str().unwrap().to_owned()
    }
}

/// Polls `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `veto relay` child process between two nodes, with its control port.
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
        let child = Command::new(veto_bin())
            .args(["relay", "--listen", &format!("127.0.0.1:{listen}"), "--to", &format!("127.0.0.1:{to_port}")])
            .args(["--control", &format!("127.0.0.1:{control}"), "--seed", &seed.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn veto relay");
        let relay = Relay { child, listen, control };
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

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
