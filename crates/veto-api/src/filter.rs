//! `GET /v1/filter` (role `read`): the compact edge filter of every live
//! record ([`veto_filter`]'s binary format, `application/octet-stream`),
//! with header `Veto-Cursor`, the watch cursor it was taken at.
//!
//! The cursor is taken before the records are read, as for
//! `GET /v1/snapshot`: loading the filter and then watching from its cursor
//! misses nothing. The filter is built on a blocking thread (the record read
//! and the fuse construction take about a second at ten million records),
//! one build at a time, and the last one is kept: a request that finds the
//! feed head where the last build took it gets those bytes again. A record
//! pruned since costs nothing but a key the filter still holds, which an
//! edge confirms with the node.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use tokio::sync::Mutex;
use veto_filter::FilterBuilder;

use crate::auth::Caller;
use crate::backend::BackendError;
use crate::error::{code, ApiError};
use crate::state::AppState;
use crate::tokens::Role;
use crate::watch::feed_of;

/// The last filter built, by the feed head it was taken at.
#[derive(Default)]
pub(crate) struct FilterCache {
    last: Mutex<Option<(String, Bytes)>>,
}

/// The layer that gives the route a cache of its own, per router.
pub(crate) fn cache() -> Extension<Arc<FilterCache>> {
    Extension(Arc::new(FilterCache::default()))
}

/// `GET /v1/filter`.
pub(crate) async fn filter(
    caller: Caller,
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<FilterCache>>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    if !state.backend.ready() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            crate::NOT_READY_MESSAGE,
        ));
    }
    let feed = feed_of(&state)?;
    // Held across the build: concurrent requests wait for one build and
    // then share it, rather than each reading every record.
    let mut last = cache.last.lock().await;
    // The cursor first: every record numbered up to it is already readable.
    let cursor = feed.head().to_string();
    let body = match last.as_ref() {
        Some((at, bytes)) if *at == cursor => bytes.clone(),
        _ => {
            let bytes = build(&state, cursor.clone()).await?;
            *last = Some((cursor.clone(), bytes.clone()));
            bytes
        }
    };
    drop(last);
    let mut resp = body.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&cursor) {
        headers.insert("veto-cursor", v);
    }
    Ok(resp)
}

/// Reads every live record and builds the encoded filter, on a blocking
/// thread.
async fn build(state: &AppState, cursor: String) -> Result<Bytes, ApiError> {
    let mut chunks = state.backend.snapshot_records()?;
    let task = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut builder = FilterBuilder::new();
        while let Some(chunk) = chunks.blocking_recv() {
            let chunk = chunk?;
            builder.reserve(chunk.len());
            for r in &chunk {
                builder.add_record(r);
            }
        }
        let read = started.elapsed();
        let filter = builder
            .build(&cursor)
            .map_err(|e| BackendError::Unavailable(format!("the filter cannot be built: {e}")))?;
        let bytes = filter.encode();
        tracing::info!(
            keys = filter.key_count(),
            cutoffs = filter.cutoffs().len(),
            bytes = bytes.len(),
            read_ms = read.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            %cursor,
            "edge filter built"
        );
        Ok::<_, BackendError>(Bytes::from(bytes))
    });
    match task.await {
        Ok(result) => result.map_err(|e| match e {
            BackendError::Storage(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::STORAGE_FAILED,
                format!("the records could not be read to the end: {m}"),
            ),
            other => other.into(),
        }),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the filter build failed: {e}"),
        )),
    }
}
