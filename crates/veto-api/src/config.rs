//! What the router needs besides the backend: the admin token and named tokens, the maximum token
//! lifetime, the metrics renderer, the wall clock, the Shared Signals
//! transmitters and the staleness bound.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::events::transmitter::Transmitter;
use crate::events::TransmitterSet;
use crate::stale::{StaleBound, StalePolicy};
use crate::tokens::TokenSet;

/// The default maximum lifetime of a token issued by any issuer veto serves.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long the `jti` of an applied SET is remembered by default, so that a
/// second delivery of it stores nothing.
pub const DEFAULT_SET_REPLAY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Renders the metrics for `GET /metrics` in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The wall clock, in Unix seconds. Injectable so that tests can pin time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system wall clock in Unix seconds (0 if the clock is before 1970).
pub fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Settings of the HTTP API.
#[derive(Clone)]
pub struct ApiConfig {
    /// The bearer token that admin endpoints require. An empty token disables
    /// every admin endpoint (they answer 401).
    pub admin_token: String,
    /// The longest a token may live. Bulk revocations default their
    /// `expires_at` to `before` plus this, and token revocations without an
    /// `expires_at` to now plus this.
    pub max_token_lifetime: Duration,
    /// Renders `GET /metrics`. `None` serves an empty page. The binary installs
    /// the metrics recorder before calling [`crate::router`], so that the
    /// lookup counters registered there are live.
    pub metrics: Option<MetricsRenderer>,
    /// The clock revocations take their defaults from, in Unix seconds: the
    /// node's hybrid clock (never behind any stamp it has seen).
    pub clock: Clock,
    /// The largest offset tolerated between this node's clock and the
    /// issuers' (and peers'): a bulk cutoff defaults to now plus this, and
    /// may not be later.
    pub max_clock_offset: Duration,
    /// The Shared Signals transmitters whose SETs `POST /v1/events` accepts.
    /// With none, every SET is refused as `invalid_issuer`.
    pub transmitters: Vec<Transmitter>,
    /// A replaceable set of transmitters that `POST /v1/events` reads
    /// instead of `transmitters`, when given: replacing its contents while
    /// the node serves changes whom SETs are accepted from.
    pub transmitter_set: Option<TransmitterSet>,
    /// How long the `jti` of an applied SET is remembered (see
    /// [`crate::events`]).
    pub set_replay_window: Duration,
    /// How stale any origin may be before lookups say so, and what
    /// `/v1/auth` then answers (see [`crate::stale`]). `None`: no bound
    /// unless a request asks for one.
    pub max_staleness: Option<StaleBound>,
    /// The named tokens accepted, with their roles (see [`crate::tokens`]),
    /// replaceable while the node serves. `None`: the admin token alone.
    pub tokens: Option<TokenSet>,
}

impl ApiConfig {
    /// A configuration with this admin token, a 24 h maximum token lifetime, no
    /// metrics and the system clock.
    pub fn new(admin_token: impl Into<String>) -> ApiConfig {
        ApiConfig {
            admin_token: admin_token.into(),
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            metrics: None,
            clock: Arc::new(system_clock),
            max_clock_offset: veto_core::hlc::DEFAULT_MAX_OFFSET,
            transmitters: Vec::new(),
            transmitter_set: None,
            set_replay_window: DEFAULT_SET_REPLAY_WINDOW,
            max_staleness: None,
            tokens: None,
        }
    }

    /// Serves `GET /metrics` from a Prometheus recorder's handle.
    pub fn with_prometheus(mut self, handle: PrometheusHandle) -> ApiConfig {
        self.metrics = Some(Arc::new(move || handle.render()));
        self
    }

    /// Sets the maximum token lifetime.
    pub fn with_max_token_lifetime(mut self, lifetime: Duration) -> ApiConfig {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Replaces the wall clock (for tests and simulations).
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> ApiConfig {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the maximum clock offset.
    pub fn with_max_clock_offset(mut self, offset: Duration) -> ApiConfig {
        self.max_clock_offset = offset;
        self
    }

    /// Accepts SETs from this transmitter at `POST /v1/events`.
    pub fn with_transmitter(mut self, transmitter: Transmitter) -> ApiConfig {
        self.transmitters.push(transmitter);
        self
    }

    /// Accepts SETs from the transmitters in `set`, whatever it holds at the
    /// time (instead of those given with [`ApiConfig::with_transmitter`]).
    pub fn with_transmitter_set(mut self, set: TransmitterSet) -> ApiConfig {
        self.transmitter_set = Some(set);
        self
    }

    /// Sets how long the `jti` of an applied SET is remembered.
    pub fn with_set_replay_window(mut self, window: Duration) -> ApiConfig {
        self.set_replay_window = window;
        self
    }

    /// Accepts the tokens of `tokens` (which should hold the admin token too)
    /// instead of the admin token alone.
    pub fn with_tokens(mut self, tokens: TokenSet) -> ApiConfig {
        self.tokens = Some(tokens);
        self
    }

    /// Sets the staleness bound and what `/v1/auth` answers past it.
    pub fn with_max_staleness(mut self, max: Duration, policy: StalePolicy) -> ApiConfig {
        self.max_staleness = Some(StaleBound::new(max, policy));
        self
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the admin token.
        f.debug_struct("ApiConfig")
            .field("admin_token", &"<redacted>")
            .field("max_token_lifetime", &self.max_token_lifetime)
            .field("metrics", &self.metrics.is_some())
            .field("transmitters", &self.transmitters)
            .field("transmitter_set", &self.transmitter_set)
            .field("set_replay_window", &self.set_replay_window)
            .field("max_staleness", &self.max_staleness)
            .field("tokens", &self.tokens.as_ref().map(|t| t.current().len()))
            .finish_non_exhaustive()
    }
}
