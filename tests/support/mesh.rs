//! A cluster of named nodes with real certificates, where each node is
//! started (and restarted, on another data dir or under another clock) by
//! the test: for tests that restore, clone and damage nodes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{eventually, free_udp_port, make_certs, tls_args, Veto};

/// Names, gossip ports and certificates of a full mesh; nodes not started.
pub struct Mesh {
    pub names: Vec<String>,
    pub ports: Vec<u16>,
    pub certs: tempfile::TempDir,
    pub root: tempfile::TempDir,
}

impl Mesh {
    /// Certificates for every name, and one gossip port each.
    pub fn new(names: &[&str]) -> Mesh {
        let certs = tempfile::tempdir().unwrap();
        make_certs(certs.path(), names);
        Mesh {
            names: names.iter().map(|n| n.to_string()).collect(),
            ports: names.iter().map(|_| free_udp_port()).collect(),
            certs,
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// The default data dir of node `i`.
    pub fn dir(&self, i: usize) -> PathBuf {
        self.root.path().join(&self.names[i])
    }

    /// Flags for node `i`, peered with every other node.
    pub fn args(&self, i: usize) -> Vec<String> {
        let mut args = tls_args(
            self.certs.path(),
            &self.names[i],
            self.ports[i],
            &format!("region-{}", self.names[i]),
        );
        for (j, port) in self.ports.iter().enumerate() {
            if j != i {
                args.push("--peer".into());
                args.push(format!("127.0.0.1:{port}"));
            }
        }
        args
    }

    /// Starts node `i` on its default data dir.
    pub fn start(&self, i: usize) -> Veto {
        self.start_on(i, &self.dir(i), &[], Vec::new())
    }

    /// Starts node `i` on `dir`, with extra flags and environment.
    pub fn start_on(
        &self,
        i: usize,
        dir: &Path,
        extra: &[&str],
        env: Vec<(String, String)>,
    ) -> Veto {
        let mut args = self.args(i);
        args.extend(extra.iter().map(|s| s.to_string()));
        Veto::start_env(dir, &args, env)
    }
}

/// How many of a node's peers are connected.
pub fn connected(node: &Veto) -> usize {
    node.status()["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "connected")
        .count()
}

/// Waits until every node has `n` connected peers.
pub fn wait_connected(nodes: &[&Veto], n: usize) {
    for node in nodes {
        eventually(Duration::from_secs(30), "peers connected", || {
            connected(node) >= n
        });
    }
}

/// Waits until every node enforces every record (by its exact token key),
/// then until their digests agree.
pub fn wait_enforced_everywhere(nodes: &[&Veto], records: &[Value]) {
    for node in nodes {
        eventually(Duration::from_secs(60), "every record enforced", || {
            records.iter().all(|r| enforced(node, r))
        });
    }
    eventually(Duration::from_secs(60), "digests agree", || {
        let digests: Vec<String> = nodes.iter().map(|n| n.digest()).collect();
        digests.windows(2).all(|w| w[0] == w[1])
    });
}

/// Whether `node` enforces the token-scope record `r` (by `iss` and `jti`).
pub fn enforced(node: &Veto, r: &Value) -> bool {
    let iss = r["iss"].as_str().unwrap_or_default();
    let jti = r["jti"].as_str().expect("a token record with a jti");
    node.revoked(&[("iss", iss), ("jti", jti)])
}

/// Revokes `n` tokens at `node` (jti `<prefix>-<k>`, issuer
/// `https://idp.example`), one request each; returns the records.
pub fn revoke_tokens(node: &Veto, prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| {
            node.revoke(serde_json::json!({
                "scope": "token", "iss": "https://idp.example", "jti": format!("{prefix}-{k}"),
                "reason": prefix,
            }))
        })
        .collect()
}

/// Whether `node` shows a connected peer named `name` in `/v1/status`.
pub fn connected_to(node: &Veto, name: &str) -> bool {
    node.status()["peers"].as_array().is_some_and(|peers| {
        peers
            .iter()
            .any(|p| p["name"] == name && p["state"] == "connected")
    })
}

/// Connections `node` refused, as `veto_peer_refused_total` counts them for
/// `reason` (removed, not_listed, revoked, name_mismatch).
pub fn peer_refusals(node: &Veto, reason: &str) -> u64 {
    let metrics = node.get("/metrics").text().unwrap();
    let label = format!("reason=\"{reason}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("veto_peer_refused_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
