//! veto-grpc: the gateway check of a veto node over gRPC, as Envoy's
//! external authorization service `envoy.service.auth.v3.Authorization`
//! (the `ext_authz` filter's `grpc_service`, which Istio's `CUSTOM`
//! authorization uses), on tonic, in plaintext HTTP/2.
//!
//! The decision is veto-api's [`veto_api::GatewayAuth::decide`], the one
//! `/v1/auth` makes: the same token taken from the same `Authorization`
//! header, the same lookup, the same answers and the same metrics. This crate
//! only reads the header out of a `CheckRequest` ([`check::authorization`])
//! and writes the decision into a `CheckResponse` ([`check::response`]):
//!
//! | decision | `status.code` | Envoy answers the client |
//! |---|---|---|
//! | not revoked | `OK` | the upstream's answer |
//! | not revoked, an origin staler than `--max-staleness`, policy `open` | `OK`, `Veto-Stale` set on the upstream request | the upstream's answer |
//! | revoked, missing, malformed, several `Authorization` headers | `UNAUTHENTICATED` | 401 with `/v1/auth`'s `WWW-Authenticate` challenge and JSON body |
//! | not revoked, an origin staler than `--max-staleness`, policy `closed` | `UNAVAILABLE` | 503 `{"error": "stale", ...}` |
//! | the node is still loading its state | `UNAVAILABLE` | 503 `{"error": "unavailable", ...}` |
//!
//! The staleness bound is the node's configured one: a gRPC check has no
//! query to tighten it with.
//!
//! Until the node has loaded its state, [`serve`] answers every check
//! `UNAVAILABLE`, so the port can be bound first, as the HTTP one is.
//!
//! What one client can hold of the server is bounded: [`MAX_MESSAGE_BYTES`]
//! per message, [`MAX_CONNECTIONS`] connections (one beyond them is closed at
//! once), [`MAX_STREAMS_PER_CONNECTION`] calls in flight on each (more are
//! refused with `RESOURCE_EXHAUSTED`), [`CALL_TIMEOUT`] per call,
//! [`FIRST_BYTE_TIMEOUT`] for a new connection to start talking, and HTTP/2
//! keep-alive pings that close a connection whose peer is gone. Envoy fails
//! closed on every one of those refusals with `failure_mode_allow: false`.

pub mod check;
mod conn;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use veto_api::GatewayAuth;

/// The largest `CheckRequest` (or `CheckResponse`) taken, in bytes. A request
/// carries the original request's headers: give the filter
/// `allowed_headers` (just `authorization`) to keep it small.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Calls in flight on one connection (HTTP/2 streams).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// The longest a call may take, its request included; a client's shorter
/// `grpc-timeout` wins.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new connection may stay silent before it is closed.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest HTTP/2 header list of a call, in bytes.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// How often an idle connection's peer is pinged, and how long it has to
/// answer before the connection is closed.
pub const KEEPALIVE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(10));

/// Serves `envoy.service.auth.v3.Authorization/Check` on `listener` until
/// `stop` resolves. Checks are answered `UNAVAILABLE` until `gateway` is set.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<OnceLock<GatewayAuth>>,
    stop: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let service = AuthorizationServer::new(check::CheckService::new(gateway))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        .load_shed(true)
        .timeout(CALL_TIMEOUT)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(KEEPALIVE.0))
        .http2_keepalive_timeout(Some(KEEPALIVE.1))
        .serve_with_incoming_shutdown(
            service,
            conn::incoming(listener, MAX_CONNECTIONS, FIRST_BYTE_TIMEOUT),
            stop,
        )
        .await
}
