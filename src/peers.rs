//! The operator-managed peer list: persisted in the store, shown in
//! `/v1/status`, and handed to the replication driver when it changes; with
//! the names removed from it. veto-node's [`Membership`] decides from both
//! (and from the `peer` records the node holds) who may connect: the list is
//! an allow-list on dial and accept.
//!
//! A peer's `name` in a view is only ever one a certificate proved in a
//! handshake with this node; the name the operator gave is `listed_as`.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::sync::mpsc;
use veto_api::{BackendError, PeerView};
use veto_core::request::{parse_sha256, RevokeRequest};
use veto_core::ScopeKind;
use veto_node::{Membership, PeerCert, Refusal, RevokedPeers, Side};
use veto_store::{PeerEntry, Store};

/// The store setting that keeps the removed peers' names.
const REMOVED_PEERS: &str = "removed-peers";

/// A change to the peer list, for the replication driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerCommand {
    /// Start dialling this `host:port`.
    Add(String),
    /// Stop dialling this peer and close its connection.
    Remove {
        /// The configured `host:port`.
        addr: String,
        /// What it resolved to when it was dialled.
        resolved: Vec<SocketAddr>,
        /// Its certificate's name, if known: connections under it close too,
        /// whichever side dialled.
        name: Option<String>,
    },
}

/// A configured peer and what its address resolved to.
pub(crate) struct ConfiguredPeer {
    pub(crate) view: PeerView,
    pub(crate) resolved: Vec<SocketAddr>,
}

#[derive(Default)]
struct Peers {
    configured: Vec<ConfiguredPeer>,
    /// Nodes that dialled this one without being configured here.
    inbound: Vec<PeerView>,
    /// Who may be a peer.
    membership: Membership,
}

/// The peers of this node and what is known of each.
pub(crate) struct PeerDirectory {
    peers: Mutex<Peers>,
    commands: Option<mpsc::UnboundedSender<PeerCommand>>,
}

fn connecting(entry: &PeerEntry) -> ConfiguredPeer {
    ConfiguredPeer {
        view: PeerView {
            // Not proven by a certificate yet.
            name: None,
            listed_as: entry.name.clone(),
            addr: entry.addr.clone(),
            state: "connecting".to_owned(),
            lag: 0,
            rtt_ms: None,
            cwnd_bytes: None,
            lost_packets: None,
            last_contact: None,
        },
        resolved: Vec::new(),
    }
}

fn storage(e: impl std::fmt::Display) -> BackendError {
    BackendError::Storage(e.to_string())
}

impl PeerDirectory {
    /// A directory for a node without replication: peers cannot be added.
    pub(crate) fn disabled() -> PeerDirectory {
        PeerDirectory {
            peers: Mutex::new(Peers::default()),
            commands: None,
        }
    }

    /// A directory of the peer list and removed names in `store` that
    /// forwards changes to the replication driver.
    pub(crate) fn new(
        entries: &[PeerEntry],
        store: &Store,
        commands: mpsc::UnboundedSender<PeerCommand>,
    ) -> Result<PeerDirectory, veto_store::StoreError> {
        let configured = entries.iter().map(connecting).collect();
        let mut membership = store
            .setting(REMOVED_PEERS)?
            .map(|bytes| Membership::decode(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        for entry in entries {
            membership.list(&entry.addr, entry.name.as_deref());
        }
        Ok(PeerDirectory {
            peers: Mutex::new(Peers {
                configured,
                inbound: Vec::new(),
                membership,
            }),
            commands: Some(commands),
        })
    }

    /// Whether the node named `name` counts as a member for receipts and
    /// freshness: not removed from the peer list.
    pub(crate) fn admits(&self, name: &str) -> bool {
        !self.lock().membership.is_removed(name)
    }

    /// Decides, right after a handshake, whether the peer that presented
    /// `cert` may connect: `dialed` is the address this node dialled, or
    /// `None` when the peer dialled in. A dial's address is matched to the
    /// configured peer it was resolved from.
    pub(crate) fn admit(
        &self,
        revoked: &RevokedPeers,
        cert: &PeerCert<'_>,
        dialed: Option<SocketAddr>,
    ) -> Result<(), Refusal> {
        let mut peers = self.lock();
        let Peers {
            configured,
            membership,
            ..
        } = &mut *peers;
        let side_addr = dialed.map(|a| {
            configured
                .iter()
                .find(|p| p.resolved.contains(&a) || p.view.addr == a.to_string())
                .map_or_else(|| a.to_string(), |p| p.view.addr.clone())
        });
        let side = match &side_addr {
            Some(addr) => Side::Dialed { addr },
            None => Side::Accepted,
        };
        membership.admit(revoked, cert, side)
    }

    /// Why a peer already connected with `cert` must go, if it must: its
    /// certificate was revoked, or its name removed.
    pub(crate) fn refusal(&self, revoked: &RevokedPeers, cert: &PeerCert<'_>) -> Option<Refusal> {
        self.lock().membership.refusal(revoked, cert)
    }

    /// Persists the removed names after a change.
    async fn persist_membership(&self, store: &Store) -> Result<(), BackendError> {
        let text = self.lock().membership.encode();
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.put_setting(REMOVED_PEERS, text.as_bytes()))
            .await
            .map_err(storage)?
            .map_err(storage)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Peers> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every peer as an operator sees it: configured ones first, then nodes that
    /// connected to this one on their own.
    pub(crate) fn views(&self) -> Vec<PeerView> {
        let peers = self.lock();
        peers
            .configured
            .iter()
            .map(|p| p.view.clone())
            .chain(peers.inbound.iter().cloned())
            .collect()
    }

    /// How many peer nodes this node knows: the configured ones and those
    /// connected on their own.
    pub(crate) fn count(&self) -> usize {
        let peers = self.lock();
        peers.configured.len() + peers.inbound.len()
    }

    /// The configured addresses.
    pub(crate) fn addrs(&self) -> Vec<String> {
        self.lock()
            .configured
            .iter()
            .map(|p| p.view.addr.clone())
            .collect()
    }

    /// Records what a configured address resolved to.
    pub(crate) fn set_resolved(&self, addr: &str, resolved: Vec<SocketAddr>) {
        if let Some(p) = self
            .lock()
            .configured
            .iter_mut()
            .find(|p| p.view.addr == addr)
        {
            p.resolved = resolved;
        }
    }

    /// Lets the replication driver update every configured peer at once,
    /// knowing who may be a peer and how its last dial went.
    pub(crate) fn refresh(&self, f: impl FnOnce(&mut [ConfiguredPeer], &Membership)) {
        let mut peers = self.lock();
        let Peers {
            configured,
            membership,
            ..
        } = &mut *peers;
        f(configured, membership);
    }

    /// Replaces the list of unconfigured inbound peers.
    pub(crate) fn set_inbound(&self, inbound: Vec<PeerView>) {
        self.lock().inbound = inbound;
    }

    /// Adds a peer, persists it and starts dialling it.
    pub(crate) async fn add(
        &self,
        store: &Store,
        addr: String,
        name: Option<String>,
    ) -> Result<PeerView, BackendError> {
        let Some(commands) = &self.commands else {
            return Err(BackendError::Invalid(
                "replication is off on this node: start it with --tls-ca, --tls-cert and --tls-key"
                    .into(),
            ));
        };
        validate_addr(&addr)?;
        let exists = self
            .lock()
            .configured
            .iter()
            .any(|p| p.view.addr == addr || (name.is_some() && p.view.name == name));
        if exists {
            // The address is configured (by --peer, say) but its node was
            // removed: adding it by name admits it again.
            let readmitted = {
                let mut peers = self.lock();
                let Peers {
                    configured,
                    membership,
                    ..
                } = &mut *peers;
                match (&name, configured.iter_mut().find(|p| p.view.addr == addr)) {
                    (Some(n), Some(p)) if membership.add(n) => {
                        p.view.listed_as = Some(n.clone());
                        membership.list(&addr, Some(n));
                        Some(p.view.clone())
                    }
                    _ => None,
                }
            };
            if let Some(view) = readmitted {
                self.persist_membership(store).await?;
                let _ = commands.send(PeerCommand::Add(addr));
                return Ok(view);
            }
            return Err(BackendError::Conflict(format!(
                "peer {addr} is already configured"
            )));
        }
        let entry = PeerEntry {
            addr: addr.clone(),
            name,
        };
        let (disk, persisted) = (store.clone(), entry.clone());
        tokio::task::spawn_blocking(move || disk.put_peer(&persisted))
            .await
            .map_err(storage)?
            .map_err(storage)?;
        let peer = connecting(&entry);
        let view = peer.view.clone();
        let readmitted = {
            let mut peers = self.lock();
            peers.configured.push(peer);
            peers.membership.list(&entry.addr, entry.name.as_deref());
            entry
                .name
                .as_deref()
                .is_some_and(|n| peers.membership.add(n))
        };
        if readmitted {
            self.persist_membership(store).await?;
        }
        let _ = commands.send(PeerCommand::Add(addr));
        Ok(view)
    }

    /// Removes a peer by name or address, persists, and closes its connection.
    pub(crate) async fn remove(
        &self,
        store: &Store,
        name_or_addr: &str,
    ) -> Result<(), BackendError> {
        let found = {
            let peers = self.lock();
            let matches = |v: &PeerView| {
                v.addr == name_or_addr
                    || v.name.as_deref() == Some(name_or_addr)
                    || v.listed_as.as_deref() == Some(name_or_addr)
            };
            match peers.configured.iter().find(|p| matches(&p.view)) {
                // The name it was listed under, else the one proven at its
                // address: not a name another certificate showed there,
                // which may be a member in its own right.
                Some(p) => Some((
                    Some(p.view.addr.clone()),
                    p.view.listed_as.clone().or_else(|| p.view.name.clone()),
                )),
                // A node that dialled in without being configured here: it
                // is refused from now on.
                None => peers
                    .inbound
                    .iter()
                    .find(|v| matches(v))
                    .map(|v| (None, v.name.clone())),
            }
        };
        let Some((addr, name)) = found else {
            return Err(BackendError::NotFound(format!(
                "no peer named or at {name_or_addr:?}"
            )));
        };
        // A configured peer leaves the stored list; one that only dialled
        // in has nothing stored.
        if let Some(addr) = &addr {
            let (disk, key) = (store.clone(), addr.clone());
            tokio::task::spawn_blocking(move || disk.remove_peer(&key))
                .await
                .map_err(storage)?
                .map_err(storage)?;
        }
        let resolved = {
            let mut peers = self.lock();
            let resolved = addr.as_ref().and_then(|addr| {
                let resolved = peers
                    .configured
                    .iter()
                    .find(|p| &p.view.addr == addr)
                    .map(|p| p.resolved.clone());
                peers.configured.retain(|p| &p.view.addr != addr);
                peers.membership.unlist(addr);
                resolved
            });
            if let Some(name) = &name {
                peers.membership.remove(name);
            }
            resolved.unwrap_or_default()
        };
        if name.is_some() {
            self.persist_membership(store).await?;
        }
        if let Some(commands) = &self.commands {
            let _ = commands.send(PeerCommand::Remove {
                addr: addr.unwrap_or_else(|| name_or_addr.to_owned()),
                resolved,
                name,
            });
        }
        Ok(())
    }
}

/// A peer address must be `host:port`; names are resolved when dialling.
pub(crate) fn validate_addr(addr: &str) -> Result<(), BackendError> {
    let bad = || BackendError::Invalid(format!("peer address {addr:?} is not host:port"));
    if addr.len() > 255 {
        return Err(bad());
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

/// The body of `veto peers revoke-cert CERT`: 64 hex digits are a
/// certificate's SHA-256, anything else a node name (the node validates
/// both).
pub(crate) fn revoke_cert_request(cert: &str, reason: Option<String>) -> RevokeRequest {
    let request = RevokeRequest::new(ScopeKind::Peer);
    let request = if parse_sha256(cert).is_some() {
        request.cert_sha256(cert.to_ascii_lowercase())
    } else {
        request.name(cert)
    };
    match reason {
        Some(reason) => request.reason(reason),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_told_from_a_name() {
        let sha = "AB".repeat(32);
        let r = revoke_cert_request(&sha, Some("rotated".into()));
        assert_eq!(r.cert_sha256, Some("ab".repeat(32)));
        assert_eq!((r.name, r.reason.as_deref()), (None, Some("rotated")));
        // 63 digits, or a name that happens to be hex, is a name.
        for name in ["c", "eu-west-1", &"a".repeat(63)] {
            let r = revoke_cert_request(name, None);
            assert_eq!((r.name.as_deref(), r.cert_sha256), (Some(name), None));
            assert_eq!(r.scope, "peer");
        }
    }
}
