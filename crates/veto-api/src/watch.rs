//! The push side of a node: `GET /v1/watch` (server-sent events) and the
//! [`Feed`] behind it and behind the cursor of `GET /v1/snapshot`.
//!
//! # Cursors
//!
//! The node numbers every record that becomes durable here, local or
//! replicated, with a per-process arrival counter `n` (1, 2, ...). A cursor is
//! `<epoch>-<n>`: the epoch is 16 hex digits chosen at random when the process
//! starts, and `n` is the last record the holder has seen. The node keeps the
//! last records in a ring (100,000 by default). A cursor from another epoch
//! (the node restarted), older than the ring or ahead of the node cannot be
//! resumed: the watcher is told to resync.
//!
//! # `GET /v1/watch`
//!
//! Query parameters: `cursor` (resume after this cursor; the standard
//! `Last-Event-ID` header wins over it, since a reconnecting `EventSource`
//! sends the header and keeps its original URL) and `heartbeat` (seconds
//! between heartbeats, 1 to 60, default 15). Without a cursor the stream
//! starts at the present. The answer is `text/event-stream`:
//!
//! ```text
//! id: 8c1f0e25a3b4d9f7-41
//! event: ready
//! data: {"cursor":"8c1f0e25a3b4d9f7-41","node":"00000000000000ab"}
//!
//! : heartbeat
//! event: heartbeat
//! data: {"origins":[{"origin":"00000000000000ab","name":"us-east","region":"us-east","complete_through":1700000000.5,"last_heard":1700000000.5,"staleness_s":0.0},...]}
//!
//! id: 8c1f0e25a3b4d9f7-42
//! event: record
//! data: {"id":"00000000000000ab-7","scope":"token","jti":"j1",...}
//!
//! event: resync
//! data: {"reason":"unknown_epoch","message":"...","cursor":"8c1f0e25a3b4d9f7-42"}
//! ```
//!
//! - `ready` comes first and carries the cursor the stream continues after.
//! - `record` is one record in the JSON shape of `POST /v1/revocations`; its
//!   `id:` is the record's cursor. Records come in cursor order, each once.
//!   A token with the `read` role gets the enforcement fields only (no
//!   `reason`, `actor` or `on_behalf_of`); one with `audit` gets them all.
//!   Without a token the stream answers 401, as does the snapshot.
//! - `heartbeat` comes right after `ready` and then every `heartbeat`
//!   seconds, busy or idle. Its `origins` are the node's freshness
//!   watermarks as `/v1/status` shows them when it is sent: the node holds
//!   every record of `origin` up to `complete_through`, `staleness_s`
//!   seconds ago (`null`: not known). A client adds the heartbeat's own age
//!   to hold itself to a staleness bound, so that a client cut off from its
//!   node goes stale too. The block starts with the comment `: heartbeat`,
//!   which is all a keep-alive needs, and carries no `id:`.
//! - `resync` means the stream cannot continue without a gap. The stream ends
//!   after it; the client reloads `GET /v1/snapshot` and watches from the
//!   snapshot's cursor. `reason` is `unknown_epoch`, `too_far_behind` or
//!   `ahead`; `cursor` is the node's current cursor.
//!
//! # `GET /v1/snapshot`
//!
//! Every live record as newline-delimited JSON (`application/x-ndjson`): a
//! first line `{"cursor": "<cursor>", "node": "<id>"}` (the cursor is also in
//! the `Veto-Cursor` header), one record per line, and a last line
//! `{"end": true, "count": N}`. Without its end line a snapshot is incomplete
//! (a failed read ends with `{"error": ..., "message": ...}` instead). The
//! cursor is taken before the records are read, so watching from it after
//! loading the snapshot misses nothing; a record may arrive both ways, which
//! a client treats as one.
//!
//! # Bounds
//!
//! Every watcher reads the one shared ring itself, at most
//! [`FeedConfig::channel`] records at a time, so a watcher that reads slowly,
//! or not at all, holds no more than that beyond the ring: memory stays
//! bounded whatever watchers do. A watcher continues without a gap as long as
//! the ring still holds the record after its cursor; once the ring has moved
//! past it (it fell more than `--watch-buffer` records behind), it is sent
//! `resync` (`too_far_behind`) and the stream ends. A paused watcher that
//! resumes therefore receives at most the ring's records before that
//! `resync`. The node's HTTP server closes a connection whose client reads
//! nothing for its write timeout, which frees the watcher's place.
//! At most [`FeedConfig::max_watchers`] streams are open at once; beyond that the
//! answer is 503 `unavailable`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::{watch as signal, OwnedSemaphorePermit};
use tokio::time::Instant;
use veto_core::receipt::OriginView;

use crate::auth::Caller;
use crate::backend::Backend;
use crate::error::{code, ApiError};
pub use crate::feed::{Cursor, Feed, FeedConfig, ParseCursorError};
use crate::feed::{Event, Resync};
use crate::state::AppState;
use crate::tokens::Role;
use crate::view::Detail;

/// The feed, or 503 when the node has none.
pub(crate) fn feed_of(state: &AppState) -> Result<Arc<Feed>, ApiError> {
    state.backend.feed().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "this node does not serve the watch feed",
        )
    })
}

const DEFAULT_HEARTBEAT: u64 = 15;
const MAX_HEARTBEAT: u64 = 60;

struct WatchQuery {
    cursor: Option<Cursor>,
    heartbeat: Duration,
}

fn parse_cursor(value: &str, what: &str) -> Result<Cursor, ApiError> {
    value
        .parse()
        .map_err(|e: ParseCursorError| ApiError::invalid(format!("{what}: {e}")))
}

fn parse_query(query: Option<&str>, headers: &HeaderMap) -> Result<WatchQuery, ApiError> {
    let mut q = WatchQuery {
        cursor: None,
        heartbeat: Duration::from_secs(DEFAULT_HEARTBEAT),
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "cursor" if value.is_empty() => {}
            "cursor" => q.cursor = Some(parse_cursor(&value, "`cursor`")?),
            "heartbeat" => match value.parse::<u64>() {
                Ok(s) if (1..=MAX_HEARTBEAT).contains(&s) => q.heartbeat = Duration::from_secs(s),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "`heartbeat` must be whole seconds from 1 to {MAX_HEARTBEAT}, not {value:?}"
                    )))
                }
            },
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {other:?}; known are cursor, heartbeat"
                )))
            }
        }
    }
    if let Some(id) = headers.get("last-event-id") {
        let id = id
            .to_str()
            .map_err(|_| ApiError::invalid("`Last-Event-ID` is not text"))?
            .trim();
        if !id.is_empty() {
            q.cursor = Some(parse_cursor(id, "`Last-Event-ID`")?);
        }
    }
    Ok(q)
}

#[derive(Serialize)]
struct Ready<'a> {
    cursor: &'a str,
    node: String,
}

#[derive(Serialize)]
struct ResyncBody<'a> {
    reason: &'a str,
    message: &'a str,
    cursor: String,
}

fn resync_event(feed: &Feed, why: Resync) -> SseEvent {
    metrics::counter!("veto_watch_resyncs_total", "reason" => why.reason()).increment(1);
    let body = ResyncBody {
        reason: why.reason(),
        message: why.message(),
        cursor: feed.head().to_string(),
    };
    SseEvent::default()
        .event("resync")
        .data(serde_json::to_string(&body).unwrap_or_default())
}

#[derive(Serialize)]
struct HeartbeatBody {
    origins: Vec<OriginView>,
}

/// A heartbeat with the node's watermarks now. The comment is what an
/// older client takes as a keep-alive.
fn heartbeat_event(backend: &dyn Backend) -> SseEvent {
    let body = HeartbeatBody {
        origins: backend.origins(),
    };
    SseEvent::default()
        .comment("heartbeat")
        .event("heartbeat")
        // Plain strings and numbers cannot fail to serialise; if they ever
        // did, a body without `origins` makes a client reconnect, rather
        // than read "no origin" as fresh.
        .data(serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()))
}

fn record_event(epoch: u64, event: &Event, detail: Detail) -> SseEvent {
    SseEvent::default()
        .id(Cursor { epoch, n: event.n }.to_string())
        .event("record")
        .data(event.data(detail))
}

/// A watcher's position in its stream.
enum Phase {
    Ready(SseEvent),
    Streaming,
    Done,
}

struct Watcher {
    feed: Arc<Feed>,
    /// Where the heartbeats' watermarks come from.
    backend: Arc<dyn Backend>,
    heartbeat: Duration,
    /// When the next heartbeat is due: due at once after `ready`.
    next_beat: Instant,
    phase: Phase,
    /// Records taken from the ring and not yet sent: at most one chunk.
    pending: VecDeque<Event>,
    /// Signals new records; `None` when the stream never started.
    head: Option<signal::Receiver<u64>>,
    last: u64,
    /// The fields the caller's role may see.
    detail: Detail,
    _permit: OwnedSemaphorePermit,
}

impl Watcher {
    /// The next event to send, or `None` once the stream is over.
    async fn next(&mut self) -> Option<SseEvent> {
        match std::mem::replace(&mut self.phase, Phase::Streaming) {
            Phase::Ready(event) => return Some(event),
            Phase::Done => {
                self.phase = Phase::Done;
                return None;
            }
            Phase::Streaming => {}
        }
        loop {
            // A stream that never started (`head` is `None`) has nothing more.
            let head = self.head.as_mut()?;
            // Due even while records flow, so that a client's view of the
            // watermarks is never older than one interval.
            if Instant::now() >= self.next_beat {
                self.next_beat = Instant::now() + self.heartbeat;
                return Some(heartbeat_event(self.backend.as_ref()));
            }
            if let Some(event) = self.pending.pop_front() {
                if event.n != self.last + 1 {
                    // Cannot happen: the ring is read by number. A gap would
                    // break the stream's promise, so say so rather than skip.
                    tracing::error!(last = self.last, next = event.n, "gap in the watch feed");
                    self.phase = Phase::Done;
                    return Some(resync_event(&self.feed, Resync::TooFarBehind));
                }
                self.last = event.n;
                return Some(record_event(self.feed.epoch, &event, self.detail));
            }
            // Marked seen before reading, so a record published after the read
            // wakes the wait below.
            head.borrow_and_update();
            match self.feed.read(self.last, self.feed.config().channel) {
                Ok(events) if !events.is_empty() => self.pending = events.into(),
                Ok(_) => {
                    tokio::select! {
                        changed = head.changed() => {
                            if changed.is_err() {
                                self.phase = Phase::Done;
                                return None;
                            }
                        }
                        () = tokio::time::sleep_until(self.next_beat) => {}
                    }
                }
                Err(why) => {
                    self.phase = Phase::Done;
                    return Some(resync_event(&self.feed, why));
                }
            }
        }
    }
}

/// `GET /v1/watch`.
pub(crate) async fn watch(
    caller: Caller,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let detail = caller.require(Role::Read)?.detail();
    let q = parse_query(query.as_deref(), &headers)?;
    let feed = feed_of(&state)?;
    let permit = feed.watcher_permit().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            format!(
                "this node already serves {} watch streams, its limit; retry later or use another node",
                feed.config().max_watchers
            ),
        )
    })?;
    let mut watcher = Watcher {
        feed: Arc::clone(&feed),
        backend: Arc::clone(&state.backend),
        heartbeat: q.heartbeat,
        next_beat: Instant::now(),
        phase: Phase::Done,
        pending: VecDeque::new(),
        head: None,
        last: 0,
        detail,
        _permit: permit,
    };
    match feed.subscribe(q.cursor) {
        Ok(sub) => {
            let cursor = sub.after.to_string();
            let ready = Ready {
                cursor: &cursor,
                node: state.backend.node().id.to_string(),
            };
            watcher.phase = Phase::Ready(
                SseEvent::default()
                    .id(cursor.clone())
                    .event("ready")
                    .data(serde_json::to_string(&ready).unwrap_or_default()),
            );
            watcher.head = Some(sub.head);
            watcher.last = sub.after.n;
        }
        Err(why) => watcher.phase = Phase::Ready(resync_event(&feed, why)),
    }
    let stream = futures::stream::unfold(watcher, |mut w| async move {
        let event = w.next().await?;
        Some((Ok::<_, Infallible>(event), w))
    });
    // The watcher sends its own heartbeats, with the watermarks, in place of
    // axum's keep-alive comments.
    let sse = Sse::new(stream);
    // Proxies such as nginx buffer responses unless told not to.
    Ok(([("x-accel-buffering", "no")], sse).into_response())
}
