//! Dialling one configured peer address, forever, with backoff.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

use super::conn::{establish, serve, DialContext, EstablishError};
use super::frame::describe;
use super::inner::Inner;
use super::PeerState;

/// The TLS server name sent when dialling. Peers are dialled by address and
/// their name is only known from their certificate, so this is a constant that
/// the verifier ignores (see `crate::tls`).
const SERVER_NAME: &str = "veto-peer";

/// A connection that stayed up this long counts as healthy: the backoff starts
/// over from its minimum afterwards.
const STABLE: Duration = Duration::from_secs(5);

/// Draws a wait between half and all of `backoff`, so peers that failed
/// together do not retry in lockstep.
fn jitter(backoff: Duration) -> Duration {
    backoff.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

struct Stop {
    peer: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
}

impl Stop {
    fn stopped(&self) -> bool {
        *self.peer.borrow() || *self.shutdown.borrow()
    }

    /// Runs `fut` unless the peer is removed or the transport shuts down first.
    async fn run<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            out = fut => Some(out),
            _ = self.peer.wait_for(|s| *s) => None,
            _ = self.shutdown.wait_for(|s| *s) => None,
        }
    }

    async fn sleep(&mut self, d: Duration) -> bool {
        self.run(tokio::time::sleep(d)).await.is_some()
    }
}

fn set_state(inner: &Inner, addr: SocketAddr, generation: u64, state: PeerState) {
    let mut reg = inner.registry();
    reg.set_peer(addr, generation, Some(state), None);
    inner.publish_states(&reg);
}

async fn dial_once(inner: &Inner, addr: SocketAddr) -> Result<quinn::Connection, String> {
    let connecting = inner
        .endpoint
        .connect_with(inner.client_config.clone(), addr, SERVER_NAME)
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(inner.config.handshake_timeout, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// The dialler of one peer address; ends when the peer is removed or the
/// transport shuts down.
pub(crate) async fn run(
    inner: Arc<Inner>,
    addr: SocketAddr,
    generation: u64,
    stopped: watch::Receiver<bool>,
) {
    let mut stop = Stop {
        peer: stopped,
        shutdown: inner.shutdown_signal(),
    };
    let min = inner.config.backoff_min;
    let max = inner.config.backoff_max;
    let mut backoff = min;
    let mut failures = 0u32;
    let context = DialContext { addr, generation };

    while !stop.stopped() {
        // Whoever dialled it, a live connection to the node here is enough.
        let live = inner.registry().live_for_peer(addr);
        if let Some(live) = live {
            set_state(&inner, addr, generation, PeerState::Connected);
            let mut gone = live.gone();
            if stop.run(gone.wait_for(|g| *g)).await.is_none() {
                break;
            }
            backoff = min;
            // Both ends noticed the loss at once; spread their redials.
            if !stop.sleep(jitter(min)).await {
                break;
            }
            continue;
        }

        set_state(&inner, addr, generation, PeerState::Dialing);
        let attempt = async {
            let conn = dial_once(&inner, addr)
                .await
                .map_err(EstablishError::Failed)?;
            establish(&inner, conn, Some(&context)).await
        };
        let Some(outcome) = stop.run(attempt).await else {
            break;
        };
        let wait = match outcome {
            Ok(established) => {
                failures = 0;
                set_state(&inner, addr, generation, PeerState::Connected);
                // Ends when the connection does, including on removal or shutdown.
                let lived = serve(&inner, established).await;
                if lived >= STABLE {
                    backoff = min;
                }
                jitter(backoff)
            }
            Err(EstablishError::Duplicate) => {
                // The peer's own connection is kept; the next round waits on it.
                jitter(backoff)
            }
            Err(EstablishError::SelfConnect) => {
                set_state(&inner, addr, generation, PeerState::Myself);
                if failures == 0 {
                    tracing::info!(%addr, "peer address is this node itself; retrying rarely");
                }
                failures = failures.saturating_add(1);
                max
            }
            Err(EstablishError::Refused(reason)) => {
                // Refused here, not there: counted by the node, not as a
                // failed dial. Retried with backoff, since a record or the
                // peer list may change its answer.
                set_state(&inner, addr, generation, PeerState::Backoff);
                if failures == 0 {
                    tracing::warn!(%addr, %reason, "refused the peer at this address; retrying with backoff");
                }
                failures = failures.saturating_add(1);
                jitter(backoff)
            }
            Err(EstablishError::Failed(reason)) => {
                inner.totals.dial_failure();
                set_state(&inner, addr, generation, PeerState::Backoff);
                // Say it once per outage, then only at debug level.
                if failures == 0 {
                    tracing::warn!(%addr, %reason, "cannot connect to peer; retrying with backoff");
                } else {
                    tracing::debug!(%addr, %reason, failures, "peer still unreachable");
                }
                failures = failures.saturating_add(1);
                jitter(backoff)
            }
        };
        backoff = (backoff * 2).min(max);
        if !stop.sleep(wait).await {
            break;
        }
    }
    tracing::debug!(%addr, "stopped dialling peer");
}
