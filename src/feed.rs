//! The node's side of `GET /v1/watch` and `GET /v1/snapshot`: the feed that
//! numbers every record as it becomes durable here, and the snapshot reader.
//! Its limits are settings (`--watch-buffer`, `--max-watchers`,
//! `--max-snapshots`).

use std::sync::Arc;

use tokio::sync::mpsc;
use veto_api::{BackendError, Feed, FeedConfig, RecordChunks};
use veto_store::Store;

/// Records per snapshot chunk: large enough to amortise the channel, small
/// enough that a slow client holds little memory.
const SNAPSHOT_CHUNK: usize = 1_000;

/// A feed for this run of the node, with a fresh random epoch so that cursors
/// from an earlier run are recognised as such.
pub(crate) fn new_feed(config: FeedConfig) -> Arc<Feed> {
    Arc::new(Feed::new(rand::random(), config))
}

/// Reads every stored record on a blocking thread, in chunks, with
/// backpressure from the client.
///
/// The store's scan cannot stop early; once the client has gone, the rest of
/// the scan only decodes, which the snapshot limit keeps bounded.
pub(crate) fn snapshot(store: &Store) -> Result<RecordChunks, BackendError> {
    let store = store.clone();
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(SNAPSHOT_CHUNK);
        let mut open = true;
        let scan = store.for_each_record(|record| {
            if !open {
                return;
            }
            chunk.push(record);
            if chunk.len() == SNAPSHOT_CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(SNAPSHOT_CHUNK));
                open = tx.blocking_send(Ok(full)).is_ok();
            }
        });
        if !open {
            return;
        }
        let last = match scan {
            Ok(()) if chunk.is_empty() => return,
            Ok(()) => Ok(chunk),
            Err(e) => Err(BackendError::Storage(e.to_string())),
        };
        let _ = tx.blocking_send(last);
    });
    Ok(rx)
}
