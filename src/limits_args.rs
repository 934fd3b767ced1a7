//! Flags of `veto serve` that bound what clients can hold of a node: HTTP
//! timeouts, the connection cap and rate limits. They are flattened into
//! `ServeArgs`; `--config` takes the same names in snake_case.

use clap::Args;

/// Resource bounds of the HTTP API.
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct LimitArgs {
    /// Seconds a client has to send a request's headers, counted from their
    /// first byte; then the connection is closed [default: 10].
    #[arg(long, env = "VETO_HEADER_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_timeout: Option<u64>,
    /// Seconds a client has to send a request's body; a stalled body gets 408
    /// [default: 30].
    #[arg(long, env = "VETO_BODY_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_timeout: Option<u64>,
    /// Seconds a connection may sit idle between requests before it is closed
    /// [default: 60].
    #[arg(long, env = "VETO_IDLE_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) idle_timeout: Option<u64>,
    /// Seconds an answer (a watch stream too) may wait on a client that reads
    /// nothing before its connection is closed [default: 60].
    #[arg(long, env = "VETO_WRITE_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) write_timeout: Option<u64>,
    /// HTTP connections open at once; a connection beyond them is answered 503
    /// and closed [default: the file-descriptor limit less 512, at most 50000].
    #[arg(long, env = "VETO_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_connections: Option<u64>,
    /// Writes per second per bearer token (`POST /v1/revocations`, `/batch`,
    /// `/oauth2/revoke`); 0 turns the limit off [default: 1000].
    #[arg(long, env = "VETO_WRITE_RATE")]
    pub(crate) write_rate: Option<u64>,
    /// Writes a token may make at once, above its rate [default: 2000].
    #[arg(long, env = "VETO_WRITE_BURST", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) write_burst: Option<u64>,
    /// Lookups per second per client address (`/v1/check`, `/v1/auth`); 0
    /// turns the limit off [default: 100000].
    #[arg(long, env = "VETO_LOOKUP_RATE")]
    pub(crate) lookup_rate: Option<u64>,
    /// Lookups an address may make at once, above its rate [default: 100000].
    #[arg(long, env = "VETO_LOOKUP_BURST", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) lookup_burst: Option<u64>,
}
