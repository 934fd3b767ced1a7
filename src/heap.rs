//! Giving freed heap memory back to the operating system.
//!
//! glibc keeps the memory of freed allocations mapped in its arenas: after a
//! large ingest (request bodies, records on their way to the store, an index
//! grown by doubling) the node's resident memory stays at its high-water mark
//! long after the allocations are gone. `malloc_trim` returns it. It walks
//! the arenas with their locks held, so it runs only after many writes, never
//! on a node that only answers lookups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::node::Node;

/// How often the trimmer looks at the store.
const EVERY: Duration = Duration::from_secs(5);

/// Live records added or removed since the last trim that make the next one
/// worth its cost while writes go on.
const AFTER_CHANGED_RECORDS: u64 = 100_000;

/// Fewer changed records than this are not worth a trim even once writes
/// have stopped.
const AFTER_QUIET_RECORDS: u64 = 1_000;

/// Returns the heap's free memory to the operating system; how long it took.
pub(crate) fn give_back() -> Duration {
    let started = Instant::now();
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases memory that is already free; it is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
    started.elapsed()
}

/// Whether to trim now: after many changes, or once writes have stopped
/// (`live` the same as a tick ago) after a few.
fn worth_trimming(trimmed_at: u64, last_tick: u64, live: u64) -> bool {
    let changed = live.abs_diff(trimmed_at);
    changed >= AFTER_CHANGED_RECORDS || (changed >= AFTER_QUIET_RECORDS && live == last_tick)
}

/// Every [`EVERY`], trims the heap if [`worth_trimming`].
pub(crate) fn spawn_trimmer(node: Arc<Node>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(EVERY);
        let mut trimmed_at = node.store().live_count();
        let mut last_tick = trimmed_at;
        loop {
            ticker.tick().await;
            let live = node.store().live_count();
            let trim = worth_trimming(trimmed_at, last_tick, live);
            last_tick = live;
            if !trim {
                continue;
            }
            trimmed_at = live;
            match tokio::task::spawn_blocking(give_back).await {
                Ok(took) => {
                    tracing::debug!(live, took_ms = took.as_millis() as u64, "heap trimmed")
                }
                Err(e) => tracing::error!(error = %e, "heap trim task failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_during_a_long_ingest_and_once_it_stops() {
        // Writes going on, under the threshold: not yet.
        assert!(!worth_trimming(0, 40_000, 90_000));
        // Writes going on, past it.
        assert!(worth_trimming(0, 60_000, 100_000));
        // Writes stopped with a few thousand since the last trim.
        assert!(worth_trimming(100_000, 105_000, 105_000));
        // Idle, or a handful of writes: never.
        assert!(!worth_trimming(105_000, 105_000, 105_000));
        assert!(!worth_trimming(105_000, 105_500, 105_500));
        // Garbage collection removing records counts as a change.
        assert!(worth_trimming(300_000, 150_000, 150_000));
    }
}
