//! The keys of the file, as serde reads and writes them.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `--config` file: the same settings as `veto serve`'s flags, with the
/// same names in snake_case (`data_dir`, `listen`, `peers = ["host:7401"]`, ...).
/// A key left out is `None`: the flag, the environment or the default decides.
/// Unknown keys are refused, so a misspelt key is never silently ignored.
#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the records are kept.
    pub data_dir: Option<PathBuf>,
    /// The HTTP API's address.
    pub listen: Option<SocketAddr>,
    /// The QUIC gossip address.
    pub gossip_listen: Option<SocketAddr>,
    /// Envoy's gRPC ext_authz address, if served.
    pub grpc_listen: Option<SocketAddr>,
    /// This node's name (its certificate's CN).
    pub name: Option<String>,
    /// This node's region.
    pub region: Option<String>,
    /// Peers' gossip addresses (`host:port`, optionally `name=host:port`).
    #[serde(default)]
    pub peers: Vec<String>,
    /// The cluster CA certificate (PEM).
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM).
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The HTTPS certificate of the API.
    pub api_tls_cert: Option<PathBuf>,
    /// The HTTPS private key of the API.
    pub api_tls_key: Option<PathBuf>,
    /// The CA that API client certificates must chain to.
    pub api_tls_client_ca: Option<PathBuf>,
    /// A file holding the admin token.
    pub admin_token_file: Option<PathBuf>,
    /// The log format.
    pub log_format: Option<LogFormat>,
    /// The longest token lifetime, in seconds (positive).
    pub max_token_lifetime: Option<u64>,
    /// How long an expired record is kept, in seconds.
    pub gc_grace: Option<u64>,
    /// How often expired records are collected, in seconds.
    pub gc_interval: Option<u64>,
    /// Seconds between looks whether the index checkpoint is due (positive).
    pub checkpoint_interval: Option<u64>,
    /// The anti-entropy period, in milliseconds.
    pub anti_entropy_ms: Option<u64>,
    /// The clock offset from peers past which bulk cutoffs are refused, in
    /// milliseconds.
    pub max_clock_offset_ms: Option<u64>,
    /// A file that every record is appended to, for a SIEM.
    pub audit_log: Option<PathBuf>,
    /// The named API tokens and their roles.
    pub tokens_file: Option<PathBuf>,
    /// Megabytes the data dir's file system must keep free for writes.
    pub min_free_mb: Option<u64>,
    /// Events the watch feed keeps (positive).
    pub watch_buffer: Option<u64>,
    /// Concurrent watchers (positive).
    pub max_watchers: Option<u64>,
    /// Concurrent snapshots (positive).
    pub max_snapshots: Option<u64>,
    /// Seconds to read a request's headers (positive).
    pub header_timeout: Option<u64>,
    /// Seconds to read a request's body (positive).
    pub body_timeout: Option<u64>,
    /// Seconds an idle keep-alive connection is kept (positive).
    pub idle_timeout: Option<u64>,
    /// Seconds to write an answer (positive).
    pub write_timeout: Option<u64>,
    /// Open HTTP connections at most (positive).
    pub max_connections: Option<u64>,
    /// Writes per second per token (0 turns the limit off).
    pub write_rate: Option<u64>,
    /// The write limit's burst (positive).
    pub write_burst: Option<u64>,
    /// Lookups per second per client address (0 turns the limit off).
    pub lookup_rate: Option<u64>,
    /// The lookup limit's burst (positive).
    pub lookup_burst: Option<u64>,
    /// Shared Signals transmitters whose SETs `POST /v1/events` accepts.
    #[serde(default)]
    pub transmitters: Vec<TransmitterEntry>,
    /// How long a SET's `jti` is remembered against replays, in seconds.
    pub set_replay_window: Option<u64>,
    /// Seconds an origin may go unheard before lookups say so (positive).
    pub max_staleness: Option<f64>,
    /// What `/v1/auth` answers past `max_staleness`.
    pub stale_policy: Option<StalePolicy>,
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What `/v1/auth` answers past `--max-staleness`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum StalePolicy {
    /// Refuse: 503 `stale`, which gateways turn into a denial.
    Closed,
    /// Let the request through: 200 with `Veto-Stale`.
    Open,
}

/// A `[[transmitters]]` table: a Shared Signals transmitter whose SETs
/// `POST /v1/events` accepts, and where its keys (a JWKS) are.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(try_from = "RawTransmitter", into = "RawTransmitter")]
pub struct TransmitterEntry {
    /// The SETs' `iss`.
    pub issuer: String,
    /// The `aud` the SETs must carry.
    pub audience: String,
    /// Its keys.
    pub jwks: Jwks,
}

/// Where a transmitter's JWKS is.
#[derive(Debug, Clone, PartialEq)]
pub enum Jwks {
    /// `jwks_file`: a path, relative to the config file's folder.
    File(PathBuf),
    /// `jwks = '{"keys": [...]}'`: JSON text, checked to be JSON.
    Json(String),
    /// `jwks = { keys = [...] }`: a TOML table.
    Table(serde_json::Value),
}

/// The table as written: exactly one of `jwks_file` and `jwks`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTransmitter {
    issuer: String,
    audience: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks: Option<serde_json::Value>,
}

impl TryFrom<RawTransmitter> for TransmitterEntry {
    type Error = String;

    fn try_from(raw: RawTransmitter) -> Result<TransmitterEntry, String> {
        let jwks = match (raw.jwks_file, raw.jwks) {
            (Some(file), None) => Jwks::File(file),
            (None, Some(serde_json::Value::String(text))) => {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                    return Err(format!(
                        "transmitter {}: `jwks` is not JSON: {e}",
                        raw.issuer
                    ));
                }
                Jwks::Json(text)
            }
            (None, Some(table @ serde_json::Value::Object(_))) => Jwks::Table(table),
            (None, Some(_)) => {
                return Err(format!(
                    "transmitter {}: `jwks` must be a table or JSON text",
                    raw.issuer
                ))
            }
            _ => {
                return Err(format!(
                    "transmitter {}: give exactly one of `jwks_file` and `jwks`",
                    raw.issuer
                ))
            }
        };
        Ok(TransmitterEntry {
            issuer: raw.issuer,
            audience: raw.audience,
            jwks,
        })
    }
}

impl From<TransmitterEntry> for RawTransmitter {
    fn from(t: TransmitterEntry) -> RawTransmitter {
        let (jwks_file, jwks) = match t.jwks {
            Jwks::File(file) => (Some(file), None),
            Jwks::Json(text) => (None, Some(serde_json::Value::String(text))),
            Jwks::Table(table) => (None, Some(table)),
        };
        RawTransmitter {
            issuer: t.issuer,
            audience: t.audience,
            jwks_file,
            jwks,
        }
    }
}
