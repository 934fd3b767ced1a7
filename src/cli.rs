//! The command line: every subcommand and flag of `veto`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// veto: multi-region token revocation.
#[derive(Parser, Debug)]
#[command(name = "veto", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Start a node.
    Serve(Box<ServeArgs>),
    /// Create the cluster CA and node certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Revoke a token, session, subject, client, issuer or key at a node.
    Revoke(RevokeArgs),
    /// Ask a node whether a token is revoked.
    Check(CheckArgs),
    /// List, add or remove a node's peers.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// Show a node's status.
    Status(NodeArgs),
    /// Start a throwaway three-region cluster here and watch a revocation travel.
    Demo(crate::demo::DemoArgs),
    /// Revoke canary tokens at each node in turn and measure how long every
    /// other node (and a gateway) takes to refuse them.
    Probe(crate::probe::ProbeArgs),
    /// Create named API tokens with roles.
    #[command(subcommand)]
    Token(crate::api_tokens::TokenCommand),
    /// Work with `veto serve --config` files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `veto config ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Validates a TOML config file: prints every error with its key, or
    /// `ok`; exits 1 when there is an error.
    Check {
        /// The file.
        file: PathBuf,
    },
}

pub(crate) use veto_config::{LogFormat, StalePolicy as StalePolicyArg};

/// Seconds, a positive finite number (`--max-staleness`).
pub(crate) fn positive_secs(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Ok(secs),
        _ => Err(format!(
            "must be a positive number of seconds, not {text:?}"
        )),
    }
}

/// Flags of `veto serve`. Each is optional here so that a `--config` file can
/// supply what the command line and environment leave out.
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct ServeArgs {
    /// A TOML file with the same settings (flags and environment win over it).
    #[arg(long, env = "VETO_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Where the node keeps its data [default: ./veto-data].
    #[arg(long, env = "VETO_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// HTTP address [default: 127.0.0.1:7400].
    #[arg(long, env = "VETO_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// UDP address for QUIC gossip [default: 0.0.0.0:7401].
    #[arg(long, env = "VETO_GOSSIP_LISTEN")]
    pub(crate) gossip_listen: Option<SocketAddr>,
    /// Address for Envoy's gRPC ext_authz (`envoy.service.auth.v3.Authorization`,
    /// plaintext HTTP/2); the same decision as /v1/auth [default: off].
    #[arg(long, env = "VETO_GRPC_LISTEN")]
    pub(crate) grpc_listen: Option<SocketAddr>,
    /// This node's name [default: the name in its certificate, else node-<id>].
    #[arg(long, env = "VETO_NAME")]
    pub(crate) name: Option<String>,
    /// The region this node serves [default: local].
    #[arg(long, env = "VETO_REGION")]
    pub(crate) region: Option<String>,
    /// A peer's gossip address; repeatable.
    #[arg(long = "peer", env = "VETO_PEERS", value_delimiter = ',')]
    pub(crate) peers: Vec<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "VETO_TLS_CA")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM), signed by the cluster CA.
    #[arg(long, env = "VETO_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "VETO_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
    /// A file holding the admin bearer token.
    #[arg(long)]
    pub(crate) admin_token_file: Option<PathBuf>,
    /// The admin bearer token itself (environment only, to keep it out of `ps`).
    #[arg(skip)]
    pub(crate) admin_token: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "VETO_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// The longest lifetime of a token in seconds: a bulk cutoff expires this long
    /// after its `before` [default: 86400].
    #[arg(long, env = "VETO_MAX_TOKEN_LIFETIME")]
    pub(crate) max_token_lifetime: Option<u64>,
    /// Seconds a record is kept past its `expires_at` before it is pruned [default: 3600].
    #[arg(long, env = "VETO_GC_GRACE")]
    pub(crate) gc_grace: Option<u64>,
    /// Seconds between garbage-collection passes [default: 60].
    #[arg(long, env = "VETO_GC_INTERVAL")]
    pub(crate) gc_interval: Option<u64>,
    /// Seconds between looks whether the index checkpoint (a fast restart's
    /// starting point) is due; it is rewritten when the store changed, at most
    /// a tenth of the time [default: 10].
    #[arg(long, env = "VETO_CHECKPOINT_INTERVAL", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) checkpoint_interval: Option<u64>,
    /// Milliseconds between anti-entropy rounds [default: 2000].
    #[arg(long, env = "VETO_ANTI_ENTROPY_MS")]
    pub(crate) anti_entropy_ms: Option<u64>,
    /// Milliseconds a peer's clock may run ahead before its stamps are not
    /// absorbed [default: 500].
    #[arg(long, env = "VETO_MAX_CLOCK_OFFSET_MS")]
    pub(crate) max_clock_offset_ms: Option<u64>,
    /// Writes stop while the data dir's file system has less than this many
    /// MiB free, and resume once it has room again [default: 64; 0 turns the
    /// check off].
    #[arg(long, env = "VETO_MIN_FREE_MB")]
    pub(crate) min_free_mb: Option<u64>,
    /// Appends one JSON line per record made here or taken in from a peer
    /// to this file, for a SIEM (a local record's line before its revoke is
    /// answered).
    #[arg(long, env = "VETO_AUDIT_LOG")]
    pub(crate) audit_log: Option<PathBuf>,
    /// A TOML file of named API tokens with their roles (`veto token add`
    /// writes it); reloaded on SIGHUP. The admin token keeps every role.
    #[arg(long, env = "VETO_TOKENS_FILE")]
    pub(crate) tokens_file: Option<PathBuf>,
    /// Records kept for watchers to resume from [default: 100000].
    #[arg(long, env = "VETO_WATCH_BUFFER", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) watch_buffer: Option<u64>,
    /// Watch streams open at once [default: 1000].
    #[arg(long, env = "VETO_MAX_WATCHERS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_watchers: Option<u64>,
    /// Snapshots streaming at once [default: 16].
    #[arg(long, env = "VETO_MAX_SNAPSHOTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_snapshots: Option<u64>,
    /// Seconds any origin may lag here (its freshness watermark, as in
    /// /v1/status `origins`) before lookups count as stale: /v1/auth then
    /// refuses with 503 `stale`, or lets the token through with a
    /// `Veto-Stale` header under `--stale-policy open` [default: no bound].
    #[arg(
        long,
        env = "VETO_MAX_STALENESS",
        value_name = "SECS",
        allow_negative_numbers = true,
        value_parser = positive_secs
    )]
    pub(crate) max_staleness: Option<f64>,
    /// What /v1/auth answers past --max-staleness: `closed` (503) or `open`
    /// (200 with Veto-Stale) [default: closed; needs --max-staleness].
    #[arg(long, env = "VETO_STALE_POLICY", value_enum)]
    pub(crate) stale_policy: Option<StalePolicyArg>,
    #[command(flatten)]
    pub(crate) limits: crate::serve::limits_args::LimitArgs,
    #[command(flatten)]
    pub(crate) api_tls: crate::serve::api_tls_args::ApiTlsArgs,
}

#[derive(Subcommand, Debug)]
pub(crate) enum CertCommand {
    /// Create the cluster CA: DIR/ca.pem and DIR/ca.key.
    Ca {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Create a node certificate signed by the CA: OUT/NAME.pem and OUT/NAME.key.
    Node {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// The node's name (its certificate's common name).
        #[arg(long)]
        name: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// How many days the certificate is valid (the CA keeps its own).
        #[arg(long, default_value_t = veto_transport::tls::DEFAULT_NODE_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(veto_transport::tls::MAX_NODE_DAYS)))]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Where the node is, and the admin credential for writes.
#[derive(Args, Debug, Clone)]
pub(crate) struct NodeArgs {
    /// The node's HTTP API.
    #[arg(long, env = "VETO_NODE", default_value = "http://127.0.0.1:7400")]
    pub(crate) node: String,
    /// The admin bearer token.
    #[arg(long, env = "VETO_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// A file holding the admin bearer token.
    #[arg(long)]
    pub(crate) admin_token_file: Option<PathBuf>,
}

/// `veto revoke`.
#[derive(Args, Debug)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// token, session, subject, client, issuer or key.
    #[arg(long)]
    pub(crate) scope: String,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    /// An opaque token to revoke (stored only as its SHA-256).
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Cutoff for bulk scopes, Unix seconds [default: now].
    #[arg(long)]
    pub(crate) before: Option<u64>,
    /// When the record stops mattering, Unix seconds.
    #[arg(long)]
    pub(crate) expires_at: Option<u64>,
    /// Why, for the audit trail.
    #[arg(long)]
    pub(crate) reason: Option<String>,
    /// Who, for the audit trail.
    #[arg(long)]
    pub(crate) actor: Option<String>,
    /// Wait until it is enforced by `all` nodes, a `quorum`, N nodes, or
    /// every node of these regions (comma-separated), then print who
    /// enforces it; exits 3 if the wait is not met in time (it is stored
    /// all the same).
    #[arg(long, value_name = "all|quorum|N|REGIONS", value_parser = crate::revoke_wait::parse_wait)]
    pub(crate) wait: Option<String>,
    /// How long --wait waits, in seconds, at most 60 [default: 10].
    #[arg(
        long,
        value_name = "SECS",
        requires = "wait",
        allow_negative_numbers = true,
        value_parser = crate::revoke_wait::parse_timeout
    )]
    pub(crate) timeout: Option<std::time::Duration>,
}

/// Claims that identify a token.
#[derive(Args, Debug, Default)]
pub(crate) struct KeyArgs {
    /// Issuer.
    #[arg(long)]
    pub(crate) iss: Option<String>,
    /// Token id.
    #[arg(long)]
    pub(crate) jti: Option<String>,
    /// Session id.
    #[arg(long)]
    pub(crate) sid: Option<String>,
    /// Subject.
    #[arg(long)]
    pub(crate) sub: Option<String>,
    /// OAuth client id.
    #[arg(long)]
    pub(crate) client_id: Option<String>,
    /// Signing key id.
    #[arg(long)]
    pub(crate) kid: Option<String>,
}

impl KeyArgs {
    /// The keys as claims, with this `iat`.
    pub(crate) fn into_claims(self, iat: Option<u64>) -> veto_client::Claims {
        veto_client::Claims {
            iss: self.iss,
            sub: self.sub,
            jti: self.jti,
            sid: self.sid,
            client_id: self.client_id,
            kid: self.kid,
            iat,
            ..veto_client::Claims::default()
        }
    }
}

/// `veto check`.
#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The node's HTTP API.
    #[arg(long, env = "VETO_NODE", default_value = "http://127.0.0.1:7400")]
    pub(crate) node: String,
    #[command(flatten)]
    pub(crate) keys: KeyArgs,
    /// Issued-at, Unix seconds.
    #[arg(long)]
    pub(crate) iat: Option<u64>,
    /// A raw JWT or opaque token.
    #[arg(long)]
    pub(crate) token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PeersCommand {
    /// List the node's peers.
    List(NodeArgs),
    /// Add a peer by its gossip address. Both nodes of a link must list
    /// each other: a node accepts a dial-in only from a name it lists.
    Add {
        #[command(flatten)]
        node: NodeArgs,
        /// The peer's gossip address (host:port).
        addr: String,
        /// The name its certificate must prove; a node of that name may
        /// then dial in too.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a peer by name or address.
    Remove {
        #[command(flatten)]
        node: NodeArgs,
        /// The peer's name or address.
        peer: String,
    },
    /// Revoke a node's certificate: every node refuses it from then on.
    /// Stores a record of scope `peer`, which replicates like any other.
    RevokeCert {
        #[command(flatten)]
        node: NodeArgs,
        /// The certificate's SHA-256 (64 hex digits, as `veto cert node`
        /// prints it): that certificate only. Anything else is a node name:
        /// every certificate of that name.
        cert: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
}
