//! The operator-managed peer list: persisted in the store, shown in
//! `/v1/status`, and handed to the replication driver when it changes.

use std::sync::Mutex;

use tokio::sync::mpsc;
use veto_api::{BackendError, PeerView};
use veto_store::{PeerEntry, Store};

/// A change to the peer list, for the replication driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerCommand {
    /// Start dialling this address.
    Add(String),
    /// Stop dialling this address and close its connection.
    Remove(String),
}

/// The peers of this node and what is known of each.
pub(crate) struct PeerDirectory {
    peers: Mutex<Vec<PeerView>>,
    commands: Option<mpsc::UnboundedSender<PeerCommand>>,
}

fn down(entry: &PeerEntry) -> PeerView {
    PeerView {
        name: entry.name.clone(),
        addr: entry.addr.clone(),
        state: "connecting".to_owned(),
        lag: 0,
        rtt_ms: None,
        last_contact: None,
    }
}

impl PeerDirectory {
    /// A directory for a node without replication: peers cannot be added.
    pub(crate) fn disabled() -> PeerDirectory {
        PeerDirectory { peers: Mutex::new(Vec::new()), commands: None }
    }

    /// A directory that forwards changes to the replication driver.
    pub(crate) fn new(entries: &[PeerEntry], commands: mpsc::UnboundedSender<PeerCommand>) -> PeerDirectory {
        PeerDirectory { peers: Mutex::new(entries.iter().map(down).collect()), commands: Some(commands) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PeerView>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every peer as an operator sees it.
    pub(crate) fn views(&self) -> Vec<PeerView> {
        self.lock().clone()
    }

    /// Updates what is known of the peer dialled at `addr`.
    pub(crate) fn update(&self, addr: &str, f: impl FnOnce(&mut PeerView)) {
        if let Some(view) = self.lock().iter_mut().find(|p| p.addr == addr) {
            f(view);
        }
    }

    /// Adds a peer, persists it and starts dialling it.
    pub(crate) async fn add(&self, store: &Store, addr: String, name: Option<String>) -> Result<PeerView, BackendError> {
        let Some(commands) = &self.commands else {
            return Err(BackendError::Invalid(
                "replication is off on this node: start it with --tls-ca, --tls-cert and --tls-key".into(),
            ));
        };
        validate_addr(&addr)?;
        if self.lock().iter().any(|p| p.addr == addr || (name.is_some() && p.name == name)) {
            return Err(BackendError::Conflict(format!("peer {addr} is already configured")));
        }
        let entry = PeerEntry { addr: addr.clone(), name };
        let store = store.clone();
        let persisted = entry.clone();
        tokio::task::spawn_blocking(move || store.put_peer(&persisted))
            .await
            .map_err(|e| BackendError::Storage(e.to_string()))?
            .map_err(|e| BackendError::Storage(e.to_string()))?;
        let view = down(&entry);
        self.lock().push(view.clone());
        let _ = commands.send(PeerCommand::Add(addr));
        Ok(view)
    }

    /// Removes a peer by name or address, persists, and closes its connection.
    pub(crate) async fn remove(&self, store: &Store, name_or_addr: &str) -> Result<(), BackendError> {
        let addr = self
            .lock()
            .iter()
            .find(|p| p.addr == name_or_addr || p.name.as_deref() == Some(name_or_addr))
            .map(|p| p.addr.clone())
            .ok_or_else(|| BackendError::NotFound(format!("no peer named or at {name_or_addr:?}")))?;
        let store = store.clone();
        let key = addr.clone();
        tokio::task::spawn_blocking(move || store.remove_peer(&key))
            .await
            .map_err(|e| BackendError::Storage(e.to_string()))?
            .map_err(|e| BackendError::Storage(e.to_string()))?;
        self.lock().retain(|p| p.addr != addr);
        if let Some(commands) = &self.commands {
            let _ = commands.send(PeerCommand::Remove(addr));
        }
        Ok(())
    }
}

/// A peer address must be `host:port`; names are resolved when dialling.
fn validate_addr(addr: &str) -> Result<(), BackendError> {
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
