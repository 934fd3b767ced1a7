//! Real gateways (nginx, Envoy) and real client libraries (Python's Authlib),
//! and the upstream they protect. A test that cannot find one skips with a
//! message, unless VETO_REQUIRE_GATEWAYS=1 is set (as in CI), when it fails
//! instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};

use super::free_port;

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
        Nginx::start_example(bin, dir, "veto.conf", veto_port, upstream_port, &[])
    }

    /// Runs `examples/nginx/<example>` with veto's, the upstream's and its own
    /// addresses pointed at the test's, and `rewrites` made besides.
    pub fn start_example(
        bin: &Path,
        dir: &Path,
        example: &str,
        veto_port: u16,
        upstream_port: u16,
        rewrites: &[(&str, String)],
    ) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/nginx")
            .join(example);
        let mut site = std::fs::read_to_string(&path).unwrap();
        let addresses = [
            ("127.0.0.1:7400", format!("127.0.0.1:{veto_port}")),
            ("127.0.0.1:8080", format!("127.0.0.1:{upstream_port}")),
            ("listen 127.0.0.1:8000", format!("listen 127.0.0.1:{port}")),
        ];
        for (from, to) in addresses.iter().chain(rewrites) {
            site = replace_in_config(&site, from, to);
        }
        std::fs::write(dir.join(example), site).unwrap();
        let d = dir.display();
        // Started as root, nginx would run its worker as `nobody`, which cannot
        // enter a private temp dir.
        let user = if running_as_root() { "user root;" } else { "" };
        let conf = format!(
            "{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
               uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/{example};\n}}\n"
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
