//! Reloading the `--config` file on SIGHUP, without a restart.
//!
//! The file is read and resolved as at start (the same flags and environment
//! winning over it), and refused as a whole if anything in it is wrong: then
//! nothing changes. Otherwise two things change at run time:
//!
//! - the peer list: peers added to the file's `peers` are dialled as
//!   `POST /v1/peers` would, and peers gone from it are removed as
//!   `DELETE /v1/peers/...` would (so a removed node is refused until added
//!   again). Peers added or removed through the API are left alone;
//! - the `[[transmitters]]`: SETs are verified against the new set from now
//!   on (JWKS files are read again, so rotated keys are picked up).
//!
//! Every other key takes effect at restart only: each that changed is named
//! in a warning. Each reload logs one line and counts in
//! `veto_config_reloads_total{result="ok"|"error"}`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use tokio::signal::unix::{signal, Signal, SignalKind};
use veto_api::{Backend as _, BackendError, TransmitterSet};

use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::node::Node;

const RELOADS: &str = "veto_config_reloads_total";

/// The file's keys that a reload applies; every other key waits for a restart.
const RELOADABLE: [&str; 2] = ["peers", "transmitters"];

/// Waits for SIGHUP to reload the `--config` file of a node.
pub(crate) struct Reloader {
    args: ServeArgs,
    path: PathBuf,
    hangup: Signal,
    /// The file's keys as last applied.
    table: toml::Table,
}

impl Reloader {
    /// Takes SIGHUP over (from now on it no longer ends the process) if the
    /// node was started with `--config`; `None` without one.
    pub(crate) fn new(args: &ServeArgs) -> anyhow::Result<Option<Reloader>> {
        let Some(path) = args.config.clone() else {
            return Ok(None);
        };
        let hangup =
            signal(SignalKind::hangup()).context("cannot listen for SIGHUP (config reload)")?;
        Ok(Some(Reloader {
            args: args.clone(),
            table: read_table(&path).unwrap_or_default(),
            path,
            hangup,
        }))
    }

    /// Reloads the file on each SIGHUP, for as long as the node runs.
    /// `settings` are those the node started with.
    pub(crate) fn spawn(self, settings: &Settings, node: Arc<Node>, transmitters: TransmitterSet) {
        for result in ["ok", "error"] {
            metrics::counter!(RELOADS, "result" => result).increment(0);
        }
        let mut state = Applied {
            table: self.table,
            peers: settings.peers.clone(),
            replication: settings.tls.is_some(),
        };
        let (args, path, mut hangup) = (self.args, self.path, self.hangup);
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let result = match state.reload(&args, &path, &node, &transmitters).await {
                    Ok(()) => "ok",
                    Err(e) => {
                        tracing::error!(config = %path.display(), error = %format!("{e:#}"), "config reload refused; nothing changed");
                        "error"
                    }
                };
                metrics::counter!(RELOADS, "result" => result).increment(1);
            }
        });
    }
}

/// What the running node took from the file.
struct Applied {
    table: toml::Table,
    /// The peers the file (or `--peer`) listed.
    peers: Vec<String>,
    /// Whether the node replicates (it was started with TLS).
    replication: bool,
}

impl Applied {
    async fn reload(
        &mut self,
        args: &ServeArgs,
        path: &Path,
        node: &Node,
        transmitters: &TransmitterSet,
    ) -> anyhow::Result<()> {
        let table = read_table(path)?;
        let new = Settings::resolve(args.clone())?;
        for addr in &new.peers {
            crate::peers::validate_addr(addr).map_err(anyhow::Error::from)?;
        }
        if !self.replication && !new.peers.is_empty() {
            bail!("this node was started without TLS, so it cannot have peers until it is restarted with TLS");
        }

        let removed: Vec<&String> = self
            .peers
            .iter()
            .filter(|p| !new.peers.contains(p))
            .collect();
        let added: Vec<&String> = new
            .peers
            .iter()
            .filter(|p| !self.peers.contains(p))
            .collect();
        for addr in &removed {
            match node.remove_peer(addr).await {
                // Already removed through the API.
                Ok(()) | Err(BackendError::NotFound(_)) => {}
                Err(e) => {
                    tracing::error!(peer = %addr, error = %e, "cannot remove a peer gone from the config file")
                }
            }
        }
        for addr in &added {
            match node.add_peer((*addr).clone(), None).await {
                // Already added through the API.
                Ok(_) | Err(BackendError::Conflict(_)) => {}
                Err(e) => {
                    tracing::error!(peer = %addr, error = %e, "cannot add a peer new in the config file")
                }
            }
        }

        let before: BTreeSet<String> = transmitters
            .current()
            .iter()
            .map(|t| t.issuer().to_owned())
            .collect();
        let after: BTreeSet<String> = new
            .transmitters
            .iter()
            .map(|t| t.issuer().to_owned())
            .collect();
        transmitters.replace(new.transmitters);

        for key in changed_keys(&self.table, &table) {
            if key == "peers" && !args.peers.is_empty() {
                tracing::warn!(key = %key, "`peers` changed in the config file but --peer is given, which wins over it: ignored");
            } else if !RELOADABLE.contains(&key.as_str()) {
                tracing::warn!(key = %key, "`{key}` changed in the config file: ignored until restart");
            }
        }
        tracing::info!(
            config = %path.display(),
            peers_added = ?added,
            peers_removed = ?removed,
            transmitters_added = ?after.difference(&before).collect::<Vec<_>>(),
            transmitters_removed = ?before.difference(&after).collect::<Vec<_>>(),
            transmitters = after.len(),
            "config reloaded"
        );
        self.peers = new.peers;
        self.table = table;
        Ok(())
    }
}

fn read_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The keys set, unset or changed between two versions of the file.
fn changed_keys(old: &toml::Table, new: &toml::Table) -> BTreeSet<String> {
    old.keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_keys_set_unset_or_changed() {
        let old: toml::Table =
            toml::from_str("listen = \"127.0.0.1:1\"\nregion = \"a\"\ngc_grace = 5").unwrap();
        let new: toml::Table =
            toml::from_str("listen = \"127.0.0.1:2\"\nregion = \"a\"\nname = \"n\"").unwrap();
        let keys: Vec<String> = changed_keys(&old, &new).into_iter().collect();
        assert_eq!(keys, ["gc_grace", "listen", "name"]);
    }
}
