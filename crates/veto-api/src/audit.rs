//! `GET /v1/revocations`: the audit trail, newest first.
//!
//! Query parameters: `scope`, `key` (any key field, or an opaque token's hex
//! SHA-256), `origin` (16 hex digits), `since` and `until` (Unix seconds, since
//! inclusive and until exclusive), `limit` (default 100, at most 1000; a larger
//! limit is refused rather than silently cut). Unknown parameters are refused.
//!
//! With `Accept: application/x-ndjson` the same records come as one JSON
//! record per line, for a SIEM or `jq` to read as a stream.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use veto_core::audit::MAX_AUDIT_LIMIT;
use veto_core::{AuditQuery, NodeId, ScopeKind};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::tokens::Role;
use crate::view::{RecordList, RecordView};

/// The media type of one JSON value per line.
const NDJSON: &str = "application/x-ndjson";

/// Parses a Unix-seconds query parameter.
pub(crate) fn parse_secs(name: &str, value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::invalid(format!(
            "`{name}` must be Unix seconds as a non-negative integer, not {value:?}"
        ))
    })
}

pub(crate) fn parse_audit_query(query: Option<&str>) -> Result<AuditQuery, ApiError> {
    let mut q = AuditQuery::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "scope" => {
                q.scope = Some(ScopeKind::parse(&value).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "unknown scope {value:?}; valid scopes are token, session, subject, client, issuer, key"
                    ))
                })?);
            }
            "key" => q.key = Some(value.into_owned()),
            "origin" => {
                q.origin = Some(value.parse::<NodeId>().map_err(|e| {
                    ApiError::invalid(format!("`origin`: {e}"))
                })?);
            }
            "since" => q.since = Some(parse_secs("since", &value)?),
            "until" => q.until = Some(parse_secs("until", &value)?),
            "limit" => {
                q.limit = match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_AUDIT_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "`limit` must be an integer from 1 to {MAX_AUDIT_LIMIT}, not {value:?}"
                        )))
                    }
                }
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {other:?}; known are scope, key, origin, since, until, limit"
                )))
            }
        }
    }
    Ok(q)
}

/// Whether the client asked for NDJSON.
fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(NDJSON))
        })
}

/// `GET /v1/revocations`: `{"records": [...]}`, newest first, or NDJSON.
pub(crate) async fn list(
    caller: Caller,
    State(state): State<crate::state::AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Role::Audit)?;
    let q = parse_audit_query(query.as_deref())?;
    let records = state.backend.audit(q).await?;
    if !wants_ndjson(&headers) {
        return Ok(Json(RecordList::new(&records)).into_response());
    }
    let mut body = String::new();
    for r in &records {
        // A record view always serialises: its fields are strings and numbers.
        if let Ok(line) = serde_json::to_string(&RecordView::from(r)) {
            body.push_str(&line);
            body.push('\n');
        }
    }
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON))],
        body,
    )
        .into_response())
}
