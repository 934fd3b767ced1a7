//! One documentation item per route of [`crate::router`]. The functions carry
//! only the OpenAPI description and are never called; the bodies they name are
//! the handlers' own types.

// The items exist for their `#[utoipa::path]` attributes alone.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::check::{Answer, CheckInput, Results};
use crate::error::ErrorBody;
use crate::events::SetErrorBody;
use crate::oauth::OAuthError;
use crate::peers::{AddPeer, PeerList};
use veto_core::status::{PeerView, StatusView};

use crate::view::{RecordList, RecordView};
use veto_core::receipt::ReceiptView;
use veto_core::request::RevokeRequest;

/// A revocation scope, as query parameters name it.
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScopeName {
    Token,
    Session,
    Subject,
    Client,
    Issuer,
    Key,
    /// A node's certificate (keys `name`, `cert_sha256`): refused as a peer,
    /// never a token.
    Peer,
}

/// The origins staler than the staleness bound, by the name of their node:
/// seconds behind, or `null` when nothing is known of one yet.
#[derive(ToSchema, Serialize)]
#[schema(as = StaleOrigins)]
pub(crate) struct StaleOrigins(BTreeMap<String, Option<f64>>);

/// The answer to one lookup, and the origins it was given while stale.
#[derive(ToSchema, Serialize)]
#[schema(as = CheckAnswerWithStaleness)]
pub(crate) struct CheckGetAnswer {
    #[serde(flatten)]
    answer: Answer<'static>,
    /// Present when an origin was staler than the bound (configured or
    /// `max_staleness`); `revoked` means the same either way.
    #[schema(nullable = false)]
    stale: Option<StaleOrigins>,
}

/// The answers to a batch of lookups, and the origins they were given while
/// stale.
#[derive(ToSchema, Serialize)]
#[schema(as = CheckResultsWithStaleness)]
pub(crate) struct CheckBatchAnswer {
    #[serde(flatten)]
    results: Results<'static>,
    /// Present when an origin was staler than the bound (configured or
    /// `max_staleness`).
    #[schema(nullable = false)]
    stale: Option<StaleOrigins>,
}

/// A 503 of `/v1/auth`: `stale` when it found the token not revoked while an
/// origin is staler than the bound under the `closed` policy, or
/// `unavailable` while the node loads its state.
#[derive(ToSchema, Serialize)]
pub(crate) struct StaleError {
    /// `stale` or `unavailable`.
    error: String,
    message: String,
    /// With `stale`: the origins past the bound.
    #[schema(nullable = false)]
    stale: Option<StaleOrigins>,
}

/// `/healthz` and `/readyz`.
#[derive(ToSchema, Serialize)]
pub(crate) struct Health {
    /// `ok` (healthz) or `ready` (readyz).
    status: String,
}

/// RFC 7009's `token_type_hint`.
#[derive(ToSchema, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

/// The form of an RFC 7009 revocation request. Other fields (such as a
/// client's `client_id`) are ignored.
#[derive(ToSchema, Deserialize)]
pub(crate) struct OAuthRevokeForm {
    /// The token to revoke: a JWT with `iss` and `jti` is revoked by them, any
    /// other token by its SHA-256.
    token: String,
    token_type_hint: Option<TokenTypeHint>,
}

/// Revokes one thing.
///
/// The body names a scope and its keys; bulk scopes take `before` (default:
/// now). Answers the stored record, flushed to disk and pushed to every peer.
#[utoipa::path(post, path = "/v1/revocations", tag = "revocations",
    request_body = RevokeRequest,
    params(
        ("wait" = Option<String>, Query, description = "Answer once the receipt meets this: `all`, `quorum`, a number of nodes, or regions separated by commas"),
        ("timeout" = Option<f64>, Query, description = "With `wait`: seconds to wait at most (default 10, at most 60)", minimum = 0, maximum = 60),
    ),
    responses(
        (status = 201, description = "Stored and replicating; with `wait`, the wait was met and `receipt` says which nodes enforce it", body = RecordView),
        (status = 202, description = "With `wait`: stored, but the wait was not met within the timeout; `receipt` names the pending nodes", body = RecordView),
        (status = 400, description = "Malformed, or keys that do not fit the scope", body = ErrorBody),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the role this endpoint needs", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 503, description = "Storage failed or the node is not ready; nothing stored", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn revoke_one() {}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/v1/revocations", tag = "revocations",
    params(
        ("scope" = Option<ScopeName>, Query, description = "Only records of this scope"),
        ("key" = Option<String>, Query, description = "Only records with this key (any key field, or an opaque token's hex SHA-256)"),
        ("origin" = Option<String>, Query, description = "Only records made at this node: its id, 16 hex digits, not all zero", pattern = "^[0-9a-fA-F]{16}$"),
        ("since" = Option<u64>, Query, description = "Revoked at or after, Unix seconds"),
        ("until" = Option<u64>, Query, description = "Revoked before, Unix seconds"),
        ("limit" = Option<u32>, Query, description = "At most this many records (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Matching records, newest first; with `Accept: application/x-ndjson`, one record per line instead", body = RecordList),
        (status = 400, description = "An unknown or malformed parameter", body = ErrorBody),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the role this endpoint needs", body = ErrorBody),
        (status = 503, description = "Storage failed or the node is not ready", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn audit_list() {}

/// Revokes up to 10,000 things as one durable batch.
///
/// Any invalid item rejects the whole batch, naming its index.
#[utoipa::path(post, path = "/v1/revocations/batch", tag = "revocations",
    request_body = Vec<RevokeRequest>,
    params(
        ("wait" = Option<String>, Query, description = "Answer once the receipt meets this: `all`, `quorum`, a number of nodes, or regions separated by commas"),
        ("timeout" = Option<f64>, Query, description = "With `wait`: seconds to wait at most (default 10, at most 60)", minimum = 0, maximum = 60),
    ),
    responses(
        (status = 201, description = "Stored, in request order; with `wait`, met, and one `receipt` for the batch", body = RecordList),
        (status = 202, description = "With `wait`: stored, the wait not met within the timeout", body = RecordList),
        (status = 400, description = "An invalid item", body = ErrorBody),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the role this endpoint needs", body = ErrorBody),
        (status = 413, description = "Over 10,000 items or 1 MiB", body = ErrorBody),
        (status = 503, description = "Storage failed or the node is not ready; nothing stored", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn revoke_batch() {}

/// Which nodes enforce a revocation: every node of the cluster this node
/// knows of, whether it holds the record durably and since when, or when
/// it was last heard from.
#[utoipa::path(get, path = "/v1/revocations/{id}/receipt", tag = "revocations",
    params(("id" = String, Path, description = "The record's id, `<origin>-<seq>`")),
    responses(
        (status = 200, description = "The receipt", body = ReceiptView),
        (status = 400, description = "Not a record id", body = ErrorBody),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the role this endpoint needs", body = ErrorBody),
        (status = 404, description = "No node is known to hold it", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn receipt() {}

/// Is this token revoked?
///
/// Give the token's claims, or the token itself as `token` (a JWT's header and
/// claims are decoded; its signature is not checked), not both. Unknown or
/// repeated parameters are refused; empty values count as absent.
#[utoipa::path(get, path = "/v1/check", tag = "lookups",
    params(
        ("iss" = Option<String>, Query, description = "Issuer"),
        ("sub" = Option<String>, Query, description = "Subject"),
        ("jti" = Option<String>, Query, description = "Token id"),
        ("sid" = Option<String>, Query, description = "Session id"),
        ("client_id" = Option<String>, Query, description = "OAuth client id"),
        ("kid" = Option<String>, Query, description = "Signing key id"),
        ("iat" = Option<u64>, Query, description = "Issued at, Unix seconds; without it a bulk cutoff applies (fail closed)"),
        ("token" = Option<String>, Query, description = "The token itself, instead of claims"),
        ("max_staleness" = Option<f64>, Query, description = MAX_STALENESS, exclusive_minimum = 0),
    ),
    responses(
        (status = 200, description = "The answer; with `stale` when an origin was staler than the bound", body = CheckGetAnswer),
        (status = 400, description = "Nothing to check, an unknown parameter, a malformed token, or a `max_staleness` that is not a positive number", body = ErrorBody),
    ))]
fn check_get() {}

/// What `max_staleness` means, on every lookup that takes it.
const MAX_STALENESS: &str = "Seconds: tightens the node's staleness bound (`--max-staleness`) for this request, or sets one under the `closed` policy when the node has none; a larger value than the node's bound is ignored";

/// Many lookups at once, answered in order.
#[utoipa::path(post, path = "/v1/check", tag = "lookups",
    request_body = Vec<CheckInput>,
    params(
        ("max_staleness" = Option<f64>, Query, description = MAX_STALENESS, exclusive_minimum = 0),
    ),
    responses(
        (status = 200, description = "One answer per lookup, in order; with `stale` when an origin was staler than the bound", body = CheckBatchAnswer),
        (status = 400, description = "An invalid item, named by index, a query parameter other than `max_staleness`, or a `max_staleness` that is not a positive number", body = ErrorBody),
        (status = 413, description = "Over 10,000 items or 1 MiB", body = ErrorBody),
    ))]
fn check_batch() {}

/// Gateway subrequest: allow unless the bearer token is revoked.
///
/// For nginx `auth_request`, Envoy `ext_authz` and Traefik ForwardAuth. Any
/// method is accepted and the body is never read. With a staleness bound (the
/// node's `--max-staleness`, or `max_staleness` in the query of the URL the
/// gateway asks), a token found not revoked while an origin is staler than
/// the bound is refused with 503 `stale` (policy `closed`) or let through
/// with `Veto-Stale` (policy `open`); a revoked token is refused either way.
/// Query parameters other than `max_staleness` are ignored.
#[utoipa::path(method(get, post, put, delete, patch, head, options, trace), path = "/v1/auth", tag = "lookups",
    params(
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>`: the token to check"),
        ("max_staleness" = Option<f64>, Query, description = MAX_STALENESS, exclusive_minimum = 0),
    ),
    responses(
        (status = 200, description = "Not revoked", headers(("Veto-Stale" = String, description = "Only when an origin is staler than the bound: `<name>=<seconds>,...`, seconds with one decimal, `unknown` for an origin of which nothing is known yet"))),
        (status = 400, description = "A `max_staleness` that is not a positive number", body = ErrorBody),
        (status = 401, description = "Revoked, missing or malformed; with `WWW-Authenticate: Bearer error=\"invalid_token\"`", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 503, description = STALE_503, body = StaleError,
            headers(("Veto-Stale" = String, description = "Only when an origin is staler than the bound: `<name>=<seconds>,...`, seconds with one decimal, `unknown` for an origin of which nothing is known yet"))),
    ))]
fn auth() {}

/// The 503 answers of `/v1/auth`.
const STALE_503: &str = "Not revoked, but an origin is staler than the bound under the `closed` policy (`stale`, naming them); or the node is still loading its state (`unavailable`)";

/// The gateway endpoint, as reached with a trailing slash.
#[utoipa::path(method(get, post, put, delete, patch, head, options, trace), path = "/v1/auth/", tag = "lookups",
    params(
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>`: the token to check"),
        ("max_staleness" = Option<f64>, Query, description = MAX_STALENESS, exclusive_minimum = 0),
    ),
    responses(
        (status = 200, description = "Not revoked", headers(("Veto-Stale" = String, description = "Only when an origin is staler than the bound: `<name>=<seconds>,...`, seconds with one decimal, `unknown` for an origin of which nothing is known yet"))),
        (status = 400, description = "A `max_staleness` that is not a positive number", body = ErrorBody),
        (status = 401, description = "Revoked, missing or malformed", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 503, description = STALE_503, body = StaleError,
            headers(("Veto-Stale" = String, description = "Only when an origin is staler than the bound: `<name>=<seconds>,...`, seconds with one decimal, `unknown` for an origin of which nothing is known yet"))),
    ))]
fn auth_slash() {}

/// The gateway endpoint behind a prefix: any path below `/v1/auth/`.
#[utoipa::path(method(get, post, put, delete, patch, head, options, trace), path = "/v1/auth/{rest}", tag = "lookups",
    params(
        ("rest" = String, Path, description = "The original request path, ignored"),
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>`: the token to check"),
        ("max_staleness" = Option<f64>, Query, description = MAX_STALENESS, exclusive_minimum = 0),
    ),
    responses(
        (status = 200, description = "Not revoked", headers(("Veto-Stale" = String, description = "Only when an origin is staler than the bound: `<name>=<seconds>,...`, seconds with one decimal, `unknown` for an origin of which nothing is known yet"))),
        (status = 400, description = "A `max_staleness` that is not a positive number", body = ErrorBody),
        (status = 401, description = "Revoked, missing or malformed", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "Bearer challenge"))),
        (status = 503, description = STALE_503, body = StaleError,
            headers(("Veto-Stale" = String, description = "Only when an origin is staler than the bound: `<name>=<seconds>,...`, seconds with one decimal, `unknown` for an origin of which nothing is known yet"))),
    ))]
fn auth_rest() {}

/// OAuth 2.0 Token Revocation (RFC 7009).
///
/// Every well-formed request answers 200 with an empty body, whatever the
/// token, so nothing about it leaks.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "revocations",
    request_body(content = OAuthRevokeForm, content_type = "application/x-www-form-urlencoded"),
    params(
        ("wait" = Option<String>, Query, description = "Answer once the receipt meets this: `all`, `quorum`, a number of nodes, or regions separated by commas"),
        ("timeout" = Option<f64>, Query, description = "With `wait`: seconds to wait at most (default 10, at most 60)", minimum = 0, maximum = 60),
    ),
    responses(
        (status = 200, description = "Revoked (or nothing to revoke); with `wait`, met, and `{\"receipt\": ...}`"),
        (status = 202, description = "With `wait`: stored, the wait not met within the timeout; `{\"receipt\": ...}`"),
        (status = 400, description = "No token, a repeated field, or an unsupported hint", body = OAuthError),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "The client's token lacks the `revoke` role (`unauthorized_client`)", body = OAuthError),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 503, description = "Storage failed; nothing stored", body = OAuthError),
    ),
    security(("admin" = []), ("adminBasic" = [])))]
fn oauth_revoke() {}

/// Receives one Security Event Token pushed by a configured transmitter.
///
/// RFC 8935 push delivery of a signed SET (RFC 8417). CAEP `session-revoked`
/// and `credential-change` (revoke, delete) and the OAuth event types
/// `token-revoked` and `tokens-revoked` become records; other events are
/// accepted and ignored, as is a SET whose `jti` was already applied.
#[utoipa::path(post, path = "/v1/events", tag = "shared-signals",
    request_body(content = String, content_type = "application/secevent+jwt",
        description = "The SET as a compact JWS, at most 64 KiB"),
    responses(
        (status = 202, description = "Accepted"),
        (status = 400, description = "RFC 8935 error: invalid_request, invalid_key, invalid_issuer, invalid_audience or authentication_failed", body = SetErrorBody),
        (status = 413, description = "The SET is over 64 KiB", body = SetErrorBody),
        (status = 503, description = "Storage failed; retry", body = SetErrorBody),
    ))]
fn events() {}

/// Every configured peer.
#[utoipa::path(get, path = "/v1/peers", tag = "membership",
    responses(
        (status = 200, description = "The peers", body = PeerList),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the `admin` role", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn peers_list() {}

/// Adds a peer at run time and persists it.
#[utoipa::path(post, path = "/v1/peers", tag = "membership",
    request_body = AddPeer,
    responses(
        (status = 201, description = "Added", body = PeerView),
        (status = 400, description = "Malformed", body = ErrorBody),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the role this endpoint needs", body = ErrorBody),
        (status = 409, description = "Already a peer", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 503, description = "Replication is off or storage failed", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn peers_add() {}

/// Removes a peer by name or address and closes its connection.
#[utoipa::path(delete, path = "/v1/peers/{name_or_addr}", tag = "membership",
    params(("name_or_addr" = String, Path, description = "The peer's name or address")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Malformed", body = ErrorBody),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the role this endpoint needs", body = ErrorBody),
        (status = 404, description = "No such peer", body = ErrorBody),
        (status = 503, description = "Replication is off or storage failed", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn peers_remove() {}

/// The node, its record count and set digest, and its peers.
#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses((status = 200, description = "Status", body = StatusView)))]
fn status() {}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
fn metrics() {}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
fn healthz() {}

/// Readiness: the node has loaded its state and serves lookups.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Still loading", body = ErrorBody),
    ))]
fn readyz() {}

/// Server-sent events: one `record` event per record that becomes durable
/// here, resumable from a cursor.
///
/// The stream opens with a `ready` event carrying the cursor it continues
/// after, then a `heartbeat` event, one per `heartbeat` seconds after that,
/// with the node's freshness watermarks; `resync` means the cursor cannot be
/// resumed and ends the stream (load `/v1/snapshot`, then watch from its
/// cursor).
#[utoipa::path(get, path = "/v1/watch", tag = "stream",
    params(
        ("cursor" = Option<String>, Query, description = "Resume after this cursor (`<epoch>-<n>`)"),
        ("heartbeat" = Option<u32>, Query, description = "Seconds between `heartbeat` events, which carry the node's freshness watermarks (`{\"origins\": [...]}`, as in `/v1/status`); default 15", minimum = 1, maximum = 60),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this cursor; wins over `cursor`"),
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A malformed cursor or parameter", body = ErrorBody),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the `read` role (`audit` sees full records; `read` only the enforcement fields)", body = ErrorBody),
        (status = 503, description = "Too many watchers, or no feed", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn watch() {}

/// Every live record as newline-delimited JSON, with the watch cursor it was
/// taken at (first line and `Veto-Cursor` header); the last line is
/// `{"end": true, "count": N}`.
#[utoipa::path(get, path = "/v1/snapshot", tag = "stream",
    responses(
        (status = 200, description = "The snapshot", body = String, content_type = "application/x-ndjson",
            headers(("Veto-Cursor" = String, description = "The cursor the snapshot was taken at"))),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the `read` role (`audit` sees full records; `read` only the enforcement fields)", body = ErrorBody),
        (status = 503, description = "Too many snapshots, or no feed", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn snapshot() {}

/// The compact edge filter of every live record: a binary fuse filter of
/// the exact keys (token, session, key) and the exact bulk cutoff table, in
/// the versioned binary format of the `veto-filter` crate, with the watch
/// cursor it was taken at (`Veto-Cursor`). A filter hit is a "maybe": confirm
/// it with `/v1/check`. Records newer than the cursor come on `/v1/watch`.
#[utoipa::path(get, path = "/v1/filter", tag = "stream",
    responses(
        (status = 200, description = "The filter", body = Vec<u8>, content_type = "application/octet-stream",
            headers(("Veto-Cursor" = String, description = "The cursor the filter was taken at"))),
        (status = 401, description = "No API token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "A token without the `read` role", body = ErrorBody),
        (status = 503, description = "The node is not ready, has no feed, or cannot read its records", body = ErrorBody),
    ),
    security(("admin" = [])))]
fn filter() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", body = Object, content_type = "application/json")))]
fn openapi() {}

/// The operator dashboard's page (no token needed: it holds no data).
#[utoipa::path(get, path = "/ui", tag = "operations",
    responses(
        (status = 200, description = "The page, under a strict Content-Security-Policy", body = String, content_type = "text/html"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
    ))]
fn ui() {}

/// The operator dashboard's page.
#[utoipa::path(get, path = "/ui/", tag = "operations",
    responses(
        (status = 200, description = "The page, under a strict Content-Security-Policy", body = String, content_type = "text/html"),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
    ))]
fn ui_slash() {}

/// A file of the operator dashboard (its scripts, style sheet and icon).
#[utoipa::path(get, path = "/ui/{asset}", tag = "operations",
    params(("asset" = String, Path, description = "The file's name, such as `app.js`")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/html"), (String = "text/css"),
            (String = "text/javascript"), (String = "image/svg+xml"))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 400, description = "A malformed name", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
fn ui_asset() {}
