//! Resolving a node's settings: command line and environment first, then the
//! `--config` TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use veto_config::{ConfigFile as FileConfig, Jwks, TransmitterEntry};

use crate::cli::{LogFormat, ServeArgs, StalePolicyArg};
use crate::serve::http::rate::{self, Rate, RateLimits};
use crate::serve::http::HttpLimits;
use crate::serve::limits_args::LimitArgs;

/// Loads a `[[transmitters]]` entry's keys: `jwks_file` relative to the
/// config file's folder `base`.
fn load_transmitter(t: TransmitterEntry, base: &Path) -> anyhow::Result<veto_api::Transmitter> {
    let TransmitterEntry {
        issuer,
        audience,
        jwks,
    } = t;
    let t = match jwks {
        Jwks::File(file) => {
            veto_api::Transmitter::from_jwks_file(issuer, audience, &base.join(file))?
        }
        Jwks::Json(text) => {
            let jwks = serde_json::from_str(&text)
                .with_context(|| format!("transmitter {issuer}: `jwks` is not JSON"))?;
            veto_api::Transmitter::new(issuer, audience, &jwks)?
        }
        Jwks::Table(jwks) => veto_api::Transmitter::new(issuer, audience, &jwks)?,
    };
    Ok(t)
}

/// Paths of this node's TLS material.
#[derive(Debug, Clone)]
pub(crate) struct TlsPaths {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// Everything `veto serve` needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) listen: SocketAddr,
    pub(crate) gossip_listen: SocketAddr,
    /// Where Envoy's gRPC ext_authz is served, if anywhere.
    pub(crate) grpc_listen: Option<SocketAddr>,
    pub(crate) name: Option<String>,
    pub(crate) region: String,
    pub(crate) peers: Vec<String>,
    pub(crate) tls: Option<TlsPaths>,
    /// HTTPS on the HTTP API, if on.
    pub(crate) api_tls: Option<crate::serve::api_tls_args::ApiTlsPaths>,
    pub(crate) admin_token_file: Option<PathBuf>,
    pub(crate) admin_token: Option<String>,
    pub(crate) log_format: LogFormat,
    pub(crate) max_token_lifetime: Duration,
    pub(crate) gc_grace: Duration,
    pub(crate) gc_interval: Duration,
    /// How often the index checkpoint writer looks whether one is due.
    pub(crate) checkpoint_interval: Duration,
    pub(crate) anti_entropy_period: Duration,
    pub(crate) max_clock_offset: Duration,
    /// Bytes the data dir's file system must keep free for writes to go on.
    pub(crate) min_free_bytes: u64,
    /// Where records are logged for a SIEM, if anywhere.
    pub(crate) audit_log: Option<PathBuf>,
    /// The named API tokens with their roles, if any (see `veto token add`).
    pub(crate) tokens_file: Option<PathBuf>,
    /// Limits of the watch feed and snapshots.
    pub(crate) feed: veto_api::FeedConfig,
    /// Timeouts, the connection cap and rate limits of the HTTP API.
    pub(crate) http: HttpLimits,
    pub(crate) transmitters: Vec<veto_api::Transmitter>,
    pub(crate) set_replay_window: Duration,
    /// How stale an origin may be before lookups say so, and what
    /// `/v1/auth` then answers.
    pub(crate) max_staleness: Option<veto_api::StaleBound>,
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    veto_config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
}

impl Settings {
    /// Resolves the settings. `VETO_ADMIN_TOKEN` is read here, not by clap, so
    /// that its value never shows up in help output.
    pub(crate) fn resolve(args: ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let http = http_limits(&args.limits, &file);
        // The flags refuse 0 themselves, and `veto_config` the file's keys.
        let peers = if args.peers.is_empty() {
            file.peers
        } else {
            args.peers
        };
        let peers: Vec<String> = peers
            .into_iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        let tls = match (
            args.tls_ca.or(file.tls_ca),
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsPaths { ca, cert, key }),
            (None, None, None) => None,
            _ => bail!("--tls-ca, --tls-cert and --tls-key go together: give all three or none"),
        };
        let api_tls =
            args.api_tls
                .resolve(file.api_tls_cert, file.api_tls_key, file.api_tls_client_ca)?;
        if tls.is_none() && !peers.is_empty() {
            bail!("peers need mutual TLS: give --tls-ca, --tls-cert and --tls-key (make them with `veto cert`)");
        }
        let config_dir = args
            .config
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let transmitters = file
            .transmitters
            .into_iter()
            .map(|t| load_transmitter(t, &config_dir))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let secs = Duration::from_secs;
        let millis = Duration::from_millis;
        let admin_token = args
            .admin_token
            .or_else(|| std::env::var("VETO_ADMIN_TOKEN").ok())
            .filter(|t| !t.trim().is_empty());
        let max_token_lifetime = args
            .max_token_lifetime
            .or(file.max_token_lifetime)
            .unwrap_or(86_400);
        if max_token_lifetime == 0 {
            bail!("--max-token-lifetime must be at least 1 second");
        }
        let max_staleness = stale_bound(
            args.max_staleness.or(file.max_staleness),
            args.stale_policy.or(file.stale_policy),
        )?;
        Ok(Settings {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./veto-data")),
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7400))),
            gossip_listen: args
                .gossip_listen
                .or(file.gossip_listen)
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 7401))),
            grpc_listen: args.grpc_listen.or(file.grpc_listen),
            name: args.name.or(file.name),
            region: args
                .region
                .or(file.region)
                .unwrap_or_else(|| "local".to_owned()),
            peers,
            tls,
            api_tls,
            admin_token_file: args.admin_token_file.or(file.admin_token_file),
            admin_token,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            max_token_lifetime: secs(max_token_lifetime),
            gc_grace: secs(args.gc_grace.or(file.gc_grace).unwrap_or(3_600)),
            gc_interval: secs(args.gc_interval.or(file.gc_interval).unwrap_or(60).max(1)),
            checkpoint_interval: secs(
                args.checkpoint_interval
                    .or(file.checkpoint_interval)
                    .unwrap_or(10),
            ),
            anti_entropy_period: millis(
                args.anti_entropy_ms
                    .or(file.anti_entropy_ms)
                    .unwrap_or(2_000)
                    .max(10),
            ),
            max_clock_offset: millis(
                args.max_clock_offset_ms
                    .or(file.max_clock_offset_ms)
                    .unwrap_or(500),
            ),
            audit_log: args.audit_log.clone().or(file.audit_log.clone()),
            tokens_file: args.tokens_file.clone().or(file.tokens_file.clone()),
            min_free_bytes: args
                .min_free_mb
                .or(file.min_free_mb)
                .unwrap_or(64)
                .saturating_mul(1 << 20),
            feed: {
                let defaults = veto_api::FeedConfig::default();
                let limit = |flag: Option<u64>, key: Option<u64>, default: usize| {
                    flag.or(key)
                        .filter(|n| *n > 0)
                        .map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
                };
                veto_api::FeedConfig {
                    ring: limit(args.watch_buffer, file.watch_buffer, defaults.ring),
                    max_watchers: limit(
                        args.max_watchers,
                        file.max_watchers,
                        defaults.max_watchers,
                    ),
                    max_snapshots: limit(
                        args.max_snapshots,
                        file.max_snapshots,
                        defaults.max_snapshots,
                    ),
                    channel: defaults.channel,
                }
            },
            http,
            transmitters,
            set_replay_window: file
                .set_replay_window
                .map_or(veto_api::DEFAULT_SET_REPLAY_WINDOW, secs),
            max_staleness,
        })
    }
}

/// The staleness bound from `--max-staleness` and `--stale-policy` (or the
/// file's `max_staleness` and `stale_policy`): a policy alone is refused,
/// since with no bound nothing is ever stale and the policy would silently
/// do nothing.
fn stale_bound(
    max: Option<f64>,
    policy: Option<StalePolicyArg>,
) -> anyhow::Result<Option<veto_api::StaleBound>> {
    let Some(max) = max else {
        if policy.is_some() {
            bail!(
                "--stale-policy (`stale_policy`) needs --max-staleness (`max_staleness`): \
                 without a bound nothing is ever stale"
            );
        }
        return Ok(None);
    };
    let max = Duration::try_from_secs_f64(max).unwrap_or(Duration::MAX);
    let policy = match policy {
        Some(StalePolicyArg::Open) => veto_api::StalePolicy::Open,
        Some(StalePolicyArg::Closed) | None => veto_api::StalePolicy::Closed,
    };
    Ok(Some(veto_api::StaleBound::new(max, policy)))
}

/// The HTTP limits: flags and environment, then the file, then defaults.
/// Zeros were refused already, by the flags' parsers and by `veto_config`.
fn http_limits(args: &LimitArgs, file: &FileConfig) -> HttpLimits {
    let defaults = HttpLimits::default();
    let timeout = |flag: Option<u64>, key: Option<u64>, default: Duration| {
        flag.or(key).map_or(default, Duration::from_secs)
    };
    let rate = |name: &str, rate: Option<u64>, burst: Option<u64>, default: Rate| match rate
        .unwrap_or(default.per_second)
    {
        0 => {
            tracing::debug!(limit = name, "rate limit off");
            None
        }
        per_second => Some(Rate {
            per_second,
            burst: burst.unwrap_or(default.burst),
        }),
    };
    HttpLimits {
        header_timeout: timeout(
            args.header_timeout,
            file.header_timeout,
            defaults.header_timeout,
        ),
        body_timeout: timeout(args.body_timeout, file.body_timeout, defaults.body_timeout),
        idle_timeout: timeout(args.idle_timeout, file.idle_timeout, defaults.idle_timeout),
        write_timeout: timeout(
            args.write_timeout,
            file.write_timeout,
            defaults.write_timeout,
        ),
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        rates: RateLimits {
            write: rate(
                "write_rate",
                args.write_rate.or(file.write_rate),
                args.write_burst.or(file.write_burst),
                Rate {
                    per_second: rate::DEFAULT_WRITE_RATE,
                    burst: rate::DEFAULT_WRITE_BURST,
                },
            ),
            lookup: rate(
                "lookup_rate",
                args.lookup_rate.or(file.lookup_rate),
                args.lookup_burst.or(file.lookup_burst),
                Rate {
                    per_second: rate::DEFAULT_LOOKUP_RATE,
                    burst: rate::DEFAULT_LOOKUP_BURST,
                },
            ),
        },
    }
}

/// Finds or makes the admin token: the given token, else the token file, else
/// `DATA_DIR/admin-token` (created with mode 0600 on first start).
pub(crate) fn admin_token(settings: &Settings) -> anyhow::Result<String> {
    if let Some(token) = &settings.admin_token {
        let token = token.trim().to_owned();
        crate::hygiene::check_token(&token, None);
        return Ok(token);
    }
    if let Some(path) = &settings.admin_token_file {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read admin token file {}", path.display()))?;
        let token = token.trim().to_owned();
        if token.is_empty() {
            bail!("admin token file {} is empty", path.display());
        }
        crate::hygiene::check_token(&token, Some(path));
        return Ok(token);
    }
    let path = settings.data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => bail!("admin token file {} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated an admin token; read it from this file");
    Ok(token)
}

/// Writes a secret file readable only by its owner.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// `veto config check FILE`: every key of the file on its own (unknown keys
/// and values of the wrong type, each named), then, if each key is right,
/// the file as `veto serve --config FILE` reads it (settings that only make
/// sense together, files it names). Prints `FILE: ok` or one line per error.
pub(crate) fn check_file(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut errors: Vec<String> = match veto_config::check(&text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    if errors.is_empty() {
        let args = ServeArgs {
            config: Some(path.to_path_buf()),
            ..ServeArgs::default()
        };
        if let Err(e) = Settings::resolve(args) {
            errors.push(format!("{e:#}"));
        }
    }
    if errors.is_empty() {
        println!("{}: ok", path.display());
        return Ok(());
    }
    for e in &errors {
        eprintln!("{}: {e}", path.display());
    }
    let n = errors.len();
    anyhow::bail!(
        "{n} error{} in {}",
        if n == 1 { "" } else { "s" },
        path.display()
    )
}
