//! `GET /v1/snapshot`: every live record, streamed as newline-delimited JSON
//! (`application/x-ndjson`), with the watch cursor it was taken at.
//!
//! ```text
//! {"cursor":"8c1f0e25a3b4d9f7-41","node":"00000000000000ab"}
//! {"id":"00000000000000ab-7","scope":"token","jti":"j1",...}
//! ...
//! {"end":true,"count":2}
//! ```
//!
//! The first line carries the cursor (also in the `Veto-Cursor` header), each
//! following line is a record in the JSON shape of `POST /v1/revocations`, and
//! the last line is `{"end": true, "count": N}`. A stream without its end line
//! is incomplete and must not be used; if reading fails part way, the node
//! writes `{"error": "storage_failed", "message": ...}` and stops.
//!
//! The cursor is taken before the records are read, so loading the snapshot
//! and then watching from its cursor misses nothing; a record that became
//! durable while the snapshot was read may arrive both ways, and a client must
//! treat the second arrival as a no-op (revocations are idempotent). At most
//! [`crate::FeedConfig::max_snapshots`] snapshots stream at once; beyond that
//! the answer is 503 `unavailable`.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::Caller;
use crate::backend::RecordChunks;
use crate::error::{code, ApiError};
use crate::state::AppState;
use crate::tokens::Role;
use crate::view::Detail;
use crate::watch::feed_of;

#[derive(Serialize)]
struct Header<'a> {
    cursor: &'a str,
    node: String,
}

#[derive(Serialize)]
struct End {
    end: bool,
    count: u64,
}

#[derive(Serialize)]
struct Failure<'a> {
    error: &'a str,
    message: String,
}

fn line(value: &impl Serialize) -> Bytes {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

struct Reader {
    chunks: RecordChunks,
    /// The fields the caller's role may see.
    detail: Detail,
    count: u64,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Reader {
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        match self.chunks.recv().await {
            Some(Ok(records)) => {
                let mut out = String::with_capacity(records.len() * 256);
                for r in &records {
                    match self.detail.json(r) {
                        Ok(json) => {
                            out.push_str(&json);
                            out.push('\n');
                        }
                        // Never skip a record silently: end the stream without
                        // its end line, so the client knows it is incomplete.
                        Err(e) => {
                            let _ = writeln!(out, "{{\"error\":\"internal\",\"message\":\"cannot encode record {}: {e}\"}}", r.id);
                            self.done = true;
                            return Some(Bytes::from(out));
                        }
                    }
                }
                self.count += records.len() as u64;
                Some(Bytes::from(out))
            }
            Some(Err(e)) => {
                self.done = true;
                tracing::error!(error = %e, "snapshot read failed");
                Some(line(&Failure {
                    error: code::STORAGE_FAILED,
                    message: format!("the snapshot could not be read to the end: {e}"),
                }))
            }
            None => {
                self.done = true;
                Some(line(&End {
                    end: true,
                    count: self.count,
                }))
            }
        }
    }
}

/// `GET /v1/snapshot`.
pub(crate) async fn snapshot(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Response, ApiError> {
    let detail = caller.require(Role::Read)?.detail();
    let feed = feed_of(&state)?;
    let permit = feed.snapshot_permit().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            format!(
                "this node already streams {} snapshots, its limit; retry later",
                feed.config().max_snapshots
            ),
        )
    })?;
    // The cursor first: every record numbered up to it is already readable.
    let cursor = feed.head().to_string();
    let chunks = state.backend.snapshot_records()?;
    let first = line(&Header {
        cursor: &cursor,
        node: state.backend.node().id.to_string(),
    });
    let reader = Reader {
        chunks,
        detail,
        count: 0,
        done: false,
        _permit: permit,
    };
    let rest = futures::stream::unfold(reader, |mut r| async move {
        let bytes = r.next().await?;
        Some((Ok::<_, std::io::Error>(bytes), r))
    });
    let body = futures::stream::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(first) }),
        rest,
    );
    let mut resp = Body::from_stream(body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&cursor) {
        headers.insert("veto-cursor", v);
    }
    Ok(resp)
}
