//! Compact mode ([`super::CacheMode::Compact`]): the node's edge filter
//! instead of its full snapshot.
//!
//! The cache loads `GET /v1/filter` (about 2.3 bytes per exact revocation
//! instead of the full index's 56 and more), follows `GET /v1/watch` from the
//! filter's cursor, and keeps what arrives there exactly, in the usual index.
//! A lookup asks the exact index, then the filter's cutoffs (exact), then the
//! filter's keys: a key hit is a "maybe" (false positives are about 0.003% of
//! clean tokens) that [`super::LocalCache::check_confirmed`] confirms with the
//! node, failing closed when the node cannot answer.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use veto_core::Check;
use veto_filter::{EdgeFilter, Verdict};

use super::index::CacheIndex;
use super::State;
use crate::client::Client;
use crate::error::ClientError;
use crate::types::Revoked;

/// What the compact parts of the cache say of a check.
pub(crate) enum Compact {
    /// Neither the filter nor the exact index revokes the token.
    Clean,
    /// Revoked, exactly (a record from the watch stream, or a cutoff).
    Revoked(Revoked),
    /// The filter holds one of the token's keys: ask the node.
    Maybe,
}

/// Loads the node's filter and swaps it in, with an empty exact index for
/// what comes after it. A filter the client refuses (wrong version, bad
/// checksum, truncated) leaves the cache as it was. Returns the cursor to
/// watch from.
pub(crate) async fn load(state: &State, client: &Client) -> Result<String, ClientError> {
    let started = Instant::now();
    let filter = super::follow::progress("filter", client.filter()).await?;
    let cursor = filter.cursor().to_owned();
    let keys = filter.key_count();
    let cutoffs = filter.cutoffs().len();
    {
        // Both under the index's write lock, so that no lookup sees the new
        // filter with the old index's records gone, or the other way round.
        let mut index = state.write();
        *state.filter.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(filter));
        *index = CacheIndex::new();
    }
    state.set_cursor(cursor.clone());
    state.loaded.store(true, Ordering::Relaxed);
    state.loads.fetch_add(1, Ordering::Relaxed);
    state.touch();
    state.changed();
    tracing::info!(
        keys,
        cutoffs,
        %cursor,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "veto cache loaded the edge filter"
    );
    Ok(cursor)
}

/// The exact index first, then the filter.
pub(crate) fn check(state: &State, check: &Check<'_>) -> Compact {
    let index = state.read();
    if let Some(r) = index.check(check) {
        return Compact::Revoked(r);
    }
    let filter = state.filter.read().unwrap_or_else(PoisonError::into_inner);
    drop(index);
    match filter.as_deref().map(|f| f.check(check)) {
        None | Some(Verdict::Clean) => Compact::Clean,
        Some(Verdict::Revoked(c)) => Compact::Revoked(Revoked {
            scope: c.kind.scope(),
            id: c.id,
            reason: Arc::from(""),
            revoked_at: c.revoked_at,
        }),
        Some(Verdict::Maybe) => Compact::Maybe,
    }
}

/// Asks the node about a filter hit. `None` when it cannot be asked (it is
/// unreachable, or the check carries a token hash the node takes only as
/// the token itself): the caller fails closed.
pub(crate) async fn confirm(
    client: &Client,
    check: &Check<'_>,
    token: Option<&str>,
) -> Option<Option<Revoked>> {
    let answer = match token {
        Some(t) => client.check_token(t).await,
        None if check.token_sha256.is_some() => return None,
        None => client.check(&claims_of(check)).await,
    };
    match answer {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(error = %e, node = client.base_url(), "veto cache cannot confirm a filter hit; failing closed");
            None
        }
    }
}

fn claims_of(check: &Check<'_>) -> veto_core::Claims {
    let own = |s: Option<&str>| s.map(str::to_owned);
    veto_core::Claims {
        iss: own(check.iss),
        sub: own(check.sub),
        jti: own(check.jti),
        sid: own(check.sid),
        client_id: own(check.client_id),
        kid: own(check.kid),
        iat: check.iat,
        exp: None,
        token_sha256: check.token_sha256,
    }
}

/// Keys in the filter now (0 before a filter is loaded).
pub(crate) fn filter_keys(state: &State) -> u64 {
    state
        .filter
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_deref()
        .map_or(0, EdgeFilter::key_count)
}
