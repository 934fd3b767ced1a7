//! The cache's background tasks: loading snapshots, following the watch
//! stream, reconnecting, and keeping the stale flag true to the clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::index::CacheIndex;
use super::State;
use crate::client::Client;
use crate::error::ClientError;
use crate::stream::WatchEvent;

/// How long a snapshot or a new watch stream may go without progress before
/// the attempt is abandoned and retried.
const PROGRESS: Duration = Duration::from_secs(30);

pub(crate) async fn progress<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(PROGRESS, f)
        .await
        .map_err(|_| ClientError::Protocol(format!("{what}: no progress for {PROGRESS:?}")))?
}

/// Loads a full snapshot into a fresh index and swaps it in. Returns the
/// cursor to watch from.
pub(crate) async fn load(state: &State, client: &Client) -> Result<String, ClientError> {
    if state.config.mode == super::CacheMode::Compact {
        return super::compact::load(state, client).await;
    }
    let started = Instant::now();
    let mut snapshot = progress("snapshot", client.snapshot()).await?;
    let mut fresh = CacheIndex::new();
    if let Ok(held) = state.index.read() {
        // A reload usually finds about as many records as the last load.
        fresh.reserve(held.len());
    }
    while let Some(record) = progress("snapshot", snapshot.next()).await? {
        fresh.apply(&record);
    }
    let cursor = snapshot.cursor().to_owned();
    let records = fresh.len();
    let old = std::mem::replace(&mut *state.write(), fresh);
    // Freed outside the lock: dropping a large index takes a while.
    drop(old);
    state.set_cursor(cursor.clone());
    state.loaded.store(true, Ordering::Relaxed);
    state.loads.fetch_add(1, Ordering::Relaxed);
    state.touch();
    state.changed();
    tracing::info!(
        records,
        %cursor,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "veto cache loaded the snapshot"
    );
    Ok(cursor)
}

/// Exponential backoff with jitter, so that many gateways reconnecting to a
/// restarted node do not arrive in step.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() as u64 | 1);
        Backoff {
            next: min,
            min,
            max: max.max(min),
            seed,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    async fn wait(&mut self) {
        // xorshift: good enough to spread reconnections.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        let jitter = base.mul_f64((self.seed % 1_000) as f64 / 2_000.0);
        tokio::time::sleep(base / 2 + jitter).await;
        self.next = (self.next * 2).min(self.max);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How one watch stream ended.
enum End {
    /// Reconnect and resume from the cursor.
    Broken,
    /// Reload the snapshot first.
    Reload,
    /// Reload the snapshot after a pause: a node that asks again at once
    /// (say, because this cache cannot keep up) is not hammered with
    /// snapshot downloads. The pause grows until a stream opens cleanly.
    Resync,
}

/// Follows the node for as long as the cache lives. `cursor` is `None` when a
/// snapshot must be loaded first.
pub(crate) async fn follow(state: Arc<State>, client: Client, mut cursor: Option<String>) {
    let config = state.config.clone();
    // Whole seconds, as the node takes them; three per staleness bound, so
    // that a cache holding one never goes stale between two heartbeats.
    let asked = config
        .max_staleness
        .map_or(config.heartbeat, |bound| config.heartbeat.min(bound / 3));
    let heartbeat = Duration::from_secs(asked.as_secs().clamp(1, 60));
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut next_refresh = config.refresh.map(|r| Instant::now() + r);
    loop {
        let Some(from) = cursor.clone() else {
            match load(&state, &client).await {
                Ok(c) => cursor = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, node = client.base_url(), "veto cache cannot load the snapshot; retrying");
                    backoff.wait().await;
                }
            }
            continue;
        };
        let opened = progress("watch", client.watch(Some(&from), Some(heartbeat))).await;
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, node = client.base_url(), "veto cache cannot open the watch stream; retrying");
                backoff.wait().await;
                continue;
            }
        };
        // Three missed heartbeats: the connection is gone even if TCP has
        // not noticed.
        let silence = heartbeat * 3;
        let end = loop {
            let event = match tokio::time::timeout(silence, stream.next()).await {
                Err(_) => {
                    tracing::warn!(
                        node = client.base_url(),
                        "veto watch stream silent; reconnecting"
                    );
                    break End::Broken;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, node = client.base_url(), "veto watch stream broke; reconnecting");
                    break End::Broken;
                }
                Ok(Ok(None)) => break End::Broken,
                Ok(Ok(Some(event))) => event,
            };
            match event {
                WatchEvent::Ready { .. } => {
                    state.connected.store(true, Ordering::Relaxed);
                    backoff.reset();
                    state.touch();
                }
                WatchEvent::Record { cursor: c, record } => {
                    state.write().apply(&record);
                    state.touch();
                    state.set_cursor(c.clone());
                    cursor = Some(c);
                    state.changed();
                }
                WatchEvent::Heartbeat {
                    origins: Some(origins),
                } => state.heartbeat(origins),
                WatchEvent::Heartbeat { origins: None } => state.touch(),
                WatchEvent::Resync { reason, message } => {
                    tracing::info!(%reason, %message, "veto node asked for a resync; reloading the snapshot");
                    state.resyncs.fetch_add(1, Ordering::Relaxed);
                    break End::Resync;
                }
            }
            if next_refresh.is_some_and(|t| Instant::now() >= t) {
                next_refresh = config.refresh.map(|r| Instant::now() + r);
                if state.read().earliest_expiry() < unix_now() {
                    tracing::info!("veto cache holds expired records; reloading the snapshot");
                    break End::Reload;
                }
            }
        };
        state.connected.store(false, Ordering::Relaxed);
        match end {
            End::Reload => cursor = None,
            End::Resync => {
                cursor = None;
                backoff.wait().await;
            }
            End::Broken => backoff.wait().await,
        }
    }
}

/// Keeps the stale flag true to the clock, checking a few times per bound.
pub(crate) async fn tick(state: Arc<State>) {
    let bound = state
        .config
        .max_staleness
        .map_or(state.config.stale_after, |m| {
            m.min(state.config.stale_after)
        });
    let every = (bound / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        state.update_stale();
    }
}
