//! State shared by every handler, built once in [`crate::router`].

use std::sync::Arc;
use std::time::Instant;

use metrics::{Counter, Histogram};

use crate::backend::Backend;
use crate::config::{ApiConfig, Clock, MetricsRenderer};
use crate::gateway::GatewayAuth;
use crate::stale::{StaleBound, StaleMetrics};
use crate::tokens::{TokenSet, TokenTable};

/// The lookup metrics of one endpoint. Handles are registered once, when the
/// router is built, so that a lookup only bumps atomics instead of hashing a
/// metric key on every request.
pub(crate) struct LookupMetrics {
    revoked: Counter,
    clean: Counter,
    error: Counter,
    seconds: Histogram,
}

/// How a lookup came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Revoked,
    Clean,
    Error,
}

impl LookupMetrics {
    pub(crate) fn new(endpoint: &'static str) -> LookupMetrics {
        LookupMetrics {
            revoked: metrics::counter!("veto_lookups_total", "result" => "revoked", "endpoint" => endpoint),
            clean: metrics::counter!("veto_lookups_total", "result" => "clean", "endpoint" => endpoint),
            error: metrics::counter!("veto_lookups_total", "result" => "error", "endpoint" => endpoint),
            seconds: metrics::histogram!("veto_lookup_seconds", "endpoint" => endpoint),
        }
    }

    /// Counts `n` lookups with one outcome.
    pub(crate) fn count(&self, outcome: Outcome, n: u64) {
        match outcome {
            Outcome::Revoked => self.revoked.increment(n),
            Outcome::Clean => self.clean.increment(n),
            Outcome::Error => self.error.increment(n),
        }
    }

    /// Records one lookup that started at `start`.
    pub(crate) fn record(&self, outcome: Outcome, start: Instant) {
        self.count(outcome, 1);
        self.seconds.record(start.elapsed().as_secs_f64());
    }

    /// Records the duration of a batch without counting it.
    pub(crate) fn record_duration(&self, start: Instant) {
        self.seconds.record(start.elapsed().as_secs_f64());
    }
}

pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn Backend>,
    /// The API tokens accepted now, with their roles.
    pub(crate) tokens: TokenSet,
    pub(crate) max_lifetime: u64,
    /// The maximum clock offset, in whole seconds rounded up.
    pub(crate) max_offset: u64,
    pub(crate) metrics: Option<MetricsRenderer>,
    pub(crate) clock: Clock,
    pub(crate) check_metrics: LookupMetrics,
    pub(crate) batch_metrics: LookupMetrics,
    /// The gateway check of `/v1/auth`, with its metrics.
    pub(crate) gateway: GatewayAuth,
    /// The configured staleness bound, for `/v1/check`.
    pub(crate) max_staleness: Option<StaleBound>,
    /// `/v1/check`'s lookups answered while stale.
    pub(crate) check_stale: StaleMetrics,
}

/// The router state: one pointer, cheap to clone per request.
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub(crate) fn new(backend: Arc<dyn Backend>, config: ApiConfig) -> AppState {
        let tokens = config.tokens.clone().unwrap_or_else(|| {
            // The admin token alone cannot clash with itself.
            TokenSet::new(
                TokenTable::new(Some(&config.admin_token), Vec::new()).unwrap_or_default(),
            )
        });
        let mut gateway = GatewayAuth::new(Arc::clone(&backend));
        if let Some(bound) = config.max_staleness {
            gateway = gateway.with_max_staleness(bound);
        }
        AppState(Arc::new(Shared {
            gateway,
            max_staleness: config.max_staleness,
            check_stale: StaleMetrics::new("check"),
            backend,
            tokens,
            max_lifetime: config.max_token_lifetime.as_secs(),
            max_offset: config
                .max_clock_offset
                .as_secs()
                .saturating_add(u64::from(config.max_clock_offset.subsec_nanos() > 0)),
            metrics: config.metrics,
            clock: config.clock,
            check_metrics: LookupMetrics::new("check"),
            batch_metrics: LookupMetrics::new("check_batch"),
        }))
    }

    /// Now, in Unix seconds.
    pub(crate) fn now(&self) -> u64 {
        (self.clock)()
    }

    /// What a revocation's defaults and bounds come from, now.
    pub(crate) fn cutoffs(&self) -> veto_core::request::Cutoffs {
        veto_core::request::Cutoffs {
            now: self.now(),
            max_lifetime: self.max_lifetime,
            max_offset: self.max_offset,
        }
    }
}
