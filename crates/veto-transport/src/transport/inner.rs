//! The state shared by the transport handle and every connection and dial
//! task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::config::TransportConfig;
use super::frame::code;
use super::metrics::{Metrics, Totals};
use super::registry::Registry;
use super::TransportEvent;

/// State shared by the handle and every task.
pub(crate) struct Inner {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) local_addr: SocketAddr,
    pub(crate) local_name: String,
    pub(crate) config: TransportConfig,
    pub(crate) client_config: quinn::ClientConfig,
    pub(super) events: mpsc::Sender<TransportEvent>,
    pub(super) registry: Mutex<Registry>,
    pub(super) shutdown: watch::Sender<bool>,
    pub(super) tasks: Mutex<JoinSet<()>>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(crate) totals: Totals,
    pub(crate) metrics: Metrics,
    pub(super) handshakes: Arc<Semaphore>,
}

impl Inner {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        // Registry updates are small and leave it consistent at every step, so a
        // panic elsewhere while holding the lock does not corrupt it.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn publish_states(&self, reg: &Registry) {
        let (connected, dialing, backoff) = reg.state_counts();
        self.metrics.states(connected, dialing, backoff);
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Delivers an event, waiting for room in the channel. Returns false when
    /// the receiver is gone or the transport is shutting down.
    pub(crate) async fn emit(&self, event: TransportEvent) -> bool {
        let mut shutdown = self.shutdown_signal();
        tokio::select! {
            biased;
            sent = self.events.send(event) => sent.is_ok(),
            _ = shutdown.wait_for(|s| *s) => false,
        }
    }

    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if self.is_shutting_down() {
            return;
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Reap finished tasks so the set does not grow with every connection.
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(task, &self.runtime);
    }

    pub(super) fn begin_shutdown(&self) {
        if self.shutdown.send_replace(true) {
            return;
        }
        self.endpoint.close(code::NORMAL, b"shutting down");
        let mut reg = self.registry();
        for peer in reg.peers.values() {
            peer.stop.send_replace(true);
        }
        reg.peers.clear();
        self.publish_states(&reg);
    }
}
