//! [`LocalCache`]: the node's revocations in this process, kept current by
//! the watch stream, answering lookups without a network round trip.
//!
//! It loads `GET /v1/snapshot`, then follows `GET /v1/watch` from the
//! snapshot's cursor. When the stream breaks it reconnects with exponential
//! backoff and resumes from the last cursor it applied; when the node says
//! `resync` (it restarted, or this cache fell too far behind) it reloads the
//! snapshot and swaps the new index in whole, answering from the old one
//! meanwhile. A record seen in both the snapshot and the stream is applied
//! once: revocations are idempotent.
//!
//! Staleness is the time since the last message from the node: a record, a
//! heartbeat, or a loaded snapshot. The cache asks the node for heartbeats
//! often enough to tell an idle node from a lost one. Beyond
//! [`CacheConfig::stale_after`], [`StalePolicy`] decides: fail closed (the
//! default) answers [`Decision::Unavailable`] for every token not known to be
//! revoked; fail open answers from what the cache holds. A known revocation
//! is enforced either way.
//!
//! With [`CacheConfig::max_staleness`], the cache also holds itself to the
//! node's staleness bound, as the node's `/v1/auth` does with
//! `--max-staleness`: the node's heartbeats carry its freshness watermarks
//! (how stale its copy of each origin is), and the cache's copy of an origin
//! is that stale plus the heartbeat's age. Past the bound, the same policy
//! decides, and [`LocalCache::stale_origins`] names the origins; so a node
//! partitioned from a region, and a cache cut off from its node, both go
//! stale. A node that sends no watermarks leaves such a cache stale.
//!
//! In [`CacheMode::Compact`] the cache loads the node's edge filter
//! (`GET /v1/filter`) instead of its snapshot, and keeps exactly only what
//! arrives on the watch stream after the filter's cursor: a few bytes per
//! revocation instead of the index's 56 and more. Cutoffs stay exact; a hit
//! on the filter's keys is a "maybe", which [`LocalCache::check`] answers
//! as [`Decision::Unavailable`] (it cannot ask the node synchronously) and
//! [`LocalCache::check_confirmed`] confirms with the node, answering
//! [`Decision::Unavailable`] (treat as revoked) when the node cannot be
//! reached. A filter the cache cannot read (another version, a bad checksum,
//! cut short) is refused and the cache keeps what it had.
//!
//! The lookup path takes a read lock on the index and reads one atomic flag;
//! writers hold the write lock for one record at a time, or for a pointer swap
//! after a reload.

mod compact;
mod follow;
mod fresh;
mod index;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use veto_core::jwt::{self, JwtError};
use veto_core::{Check, Record};

use crate::client::Client;
use crate::error::ClientError;
use crate::types::{Claims, Revoked};
use index::CacheIndex;

pub use fresh::StaleOrigin;

/// What to answer for a token the cache does not know to be revoked, once the
/// cache is stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StalePolicy {
    /// Answer [`Decision::Unavailable`]: the gateway should refuse the token.
    #[default]
    FailClosed,
    /// Answer from what the cache holds, accepting that a recent revocation
    /// may be missed.
    FailOpen,
}

/// What a [`LocalCache`] loads from the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Every record (`GET /v1/snapshot`): every answer exact.
    #[default]
    Full,
    /// The edge filter (`GET /v1/filter`) plus the records after it: for
    /// gateways short of memory. A filter hit needs the node to confirm
    /// ([`LocalCache::check_confirmed`]).
    Compact,
}

/// Settings of a [`LocalCache`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long without a message from the node before the cache is stale.
    pub stale_after: Duration,
    /// What a stale cache answers.
    pub policy: StalePolicy,
    /// The heartbeat interval asked of the node: whole seconds from 1 to 60.
    /// A stream silent for three of these is taken as lost and reconnected.
    pub heartbeat: Duration,
    /// The first wait before reconnecting; it doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// The longest wait between reconnection attempts.
    pub backoff_max: Duration,
    /// How often to look for expired records; when some are held, the cache
    /// reloads the snapshot so that records the node has pruned leave memory.
    /// `None` never reloads for this reason.
    pub refresh: Option<Duration>,
    /// How stale any origin may be in this cache, the node's watermarks from
    /// its last heartbeat plus that heartbeat's age, before the cache is
    /// stale. `None` (the default): origins are not looked at. The cache
    /// then asks for heartbeats at least three times per bound (at most one
    /// a second, the node's limit), so keep it above 2 s or so plus the
    /// node's own anti-entropy lag.
    pub max_staleness: Option<Duration>,
    /// Full records, or the compact edge filter.
    pub mode: CacheMode,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            stale_after: Duration::from_secs(30),
            policy: StalePolicy::FailClosed,
            heartbeat: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            refresh: Some(Duration::from_secs(3_600)),
            max_staleness: None,
            mode: CacheMode::Full,
        }
    }
}

/// A lookup's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No record the cache holds revokes the token.
    NotRevoked,
    /// This record revokes the token.
    Revoked(Revoked),
    /// The cache is stale and fails closed: treat the token as revoked.
    Unavailable,
}

impl Decision {
    /// Whether a gateway should let the token through.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::NotRevoked)
    }
}

/// What the cache knows about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheStatus {
    /// Records held.
    pub records: usize,
    /// The last cursor applied, if a snapshot was loaded.
    pub cursor: Option<String>,
    /// Time since the last message from the node (since the cache was made,
    /// before the first load).
    pub staleness: Duration,
    /// Whether the cache is stale: the staleness past `stale_after`, an
    /// origin past `max_staleness`, or nothing loaded yet.
    pub stale: bool,
    /// The origins past `max_staleness` (empty without one).
    pub stale_origins: Vec<StaleOrigin>,
    /// Whether a watch stream is open.
    pub connected: bool,
    /// Snapshots loaded, the first included.
    pub loads: u64,
    /// Times the node asked for a resync.
    pub resyncs: u64,
}

/// State shared by the handles and the background tasks.
pub(crate) struct State {
    pub(crate) index: RwLock<CacheIndex>,
    /// The node's edge filter, in compact mode once loaded. Taken after
    /// `index` whenever both are.
    pub(crate) filter: RwLock<Option<Arc<veto_filter::EdgeFilter>>>,
    /// Set by the staleness ticker, cleared by any message from the node
    /// (unless an origin is stale): one relaxed load on the lookup path
    /// instead of reading the clock.
    pub(crate) stale: AtomicBool,
    /// Whether an origin is past `max_staleness`, as last worked out.
    pub(crate) origins_stale: AtomicBool,
    /// The node's watermarks from its last heartbeat.
    pub(crate) watermarks: fresh::Watermarks,
    pub(crate) loaded: AtomicBool,
    pub(crate) connected: AtomicBool,
    /// Nanoseconds after `born` of the last message from the node.
    pub(crate) contact: AtomicU64,
    pub(crate) born: Instant,
    pub(crate) cursor: Mutex<Option<String>>,
    pub(crate) loads: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    /// Bumped after every change to the index.
    pub(crate) version: watch::Sender<u64>,
    pub(crate) config: CacheConfig,
}

impl State {
    /// `node` names the node in what the cache reports before its first
    /// heartbeat.
    fn new(config: CacheConfig, index: CacheIndex, loaded: bool, node: String) -> State {
        State {
            index: RwLock::new(index),
            filter: RwLock::new(None),
            stale: AtomicBool::new(!loaded),
            // Nothing is known of any origin before the first heartbeat.
            origins_stale: AtomicBool::new(config.max_staleness.is_some()),
            watermarks: fresh::Watermarks::new(node),
            loaded: AtomicBool::new(loaded),
            connected: AtomicBool::new(false),
            contact: AtomicU64::new(0),
            born: Instant::now(),
            cursor: Mutex::new(None),
            loads: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            version: watch::channel(0).0,
            config,
        }
    }

    /// A message came from the node.
    pub(crate) fn touch(&self) {
        let now = self.born.elapsed().as_nanos() as u64;
        self.contact.store(now, Ordering::Relaxed);
        if self.loaded.load(Ordering::Relaxed) {
            let origins = self.origins_stale.load(Ordering::Relaxed);
            self.stale.store(origins, Ordering::Relaxed);
        }
    }

    /// A heartbeat came with the node's watermarks.
    pub(crate) fn heartbeat(&self, origins: Vec<veto_core::receipt::OriginView>) {
        self.watermarks.set(origins);
        self.update_origins();
        self.touch();
    }

    /// Re-evaluates whether an origin is past `max_staleness`.
    fn update_origins(&self) -> bool {
        let stale = self
            .config
            .max_staleness
            .is_some_and(|bound| self.watermarks.any_stale(bound));
        self.origins_stale.store(stale, Ordering::Relaxed);
        stale
    }

    /// The origins past `max_staleness`, now.
    pub(crate) fn stale_origins(&self) -> Vec<StaleOrigin> {
        match self.config.max_staleness {
            Some(bound) => self.watermarks.stale(bound),
            None => Vec::new(),
        }
    }

    pub(crate) fn staleness(&self) -> Duration {
        let contact = Duration::from_nanos(self.contact.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(contact)
    }

    /// Re-evaluates the stale flag from the clock.
    pub(crate) fn update_stale(&self) {
        let origins = self.update_origins();
        let stale = !self.loaded.load(Ordering::Relaxed)
            || self.staleness() > self.config.stale_after
            || origins;
        self.stale.store(stale, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheIndex> {
        // A panic while the write lock was held leaves at worst one record
        // missing from the meta map; keep answering.
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_cursor(&self, cursor: String) {
        *self.cursor.lock().unwrap_or_else(PoisonError::into_inner) = Some(cursor);
    }

    pub(crate) fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

/// Stops the background tasks when the last handle goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The node's revocations in this process. Cheap to clone; the background
/// tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct LocalCache {
    state: Arc<State>,
    /// Asks the node about filter hits (compact mode).
    client: Option<Client>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("status", &self.status())
            .finish()
    }
}

impl LocalCache {
    /// Loads the node's snapshot, then follows its watch stream in the
    /// background. Fails if the first snapshot cannot be loaded. Must be
    /// called within a tokio runtime.
    pub async fn start(client: Client, config: CacheConfig) -> Result<LocalCache, ClientError> {
        let node = client.base_url().to_owned();
        let state = Arc::new(State::new(config, CacheIndex::new(), false, node));
        let cursor = follow::load(&state, &client).await?;
        Ok(LocalCache::run(state, client, Some(cursor)))
    }

    /// Starts empty and stale, and loads and follows the node in the
    /// background, retrying with backoff until the node answers. Until the
    /// first load, lookups answer per the stale policy.
    pub fn spawn(client: Client, config: CacheConfig) -> LocalCache {
        let node = client.base_url().to_owned();
        let state = Arc::new(State::new(config, CacheIndex::new(), false, node));
        LocalCache::run(state, client, None)
    }

    fn run(state: Arc<State>, client: Client, cursor: Option<String>) -> LocalCache {
        let confirm = client.clone();
        let follower = tokio::spawn(follow::follow(Arc::clone(&state), client, cursor));
        let ticker = tokio::spawn(follow::tick(Arc::clone(&state)));
        LocalCache {
            state,
            client: Some(confirm),
            _tasks: Arc::new(Tasks(vec![follower, ticker])),
        }
    }

    /// A cache of these records that follows no node and never goes stale:
    /// for tests, benchmarks and offline use. Needs no runtime.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> LocalCache {
        let mut index = CacheIndex::new();
        for r in records {
            index.apply(r);
        }
        LocalCache {
            state: Arc::new(State::new(
                CacheConfig::default(),
                index,
                true,
                String::new(),
            )),
            client: None,
            _tasks: Arc::new(Tasks(Vec::new())),
        }
    }

    /// Answers a lookup in process. This is the hot path: a read lock, a few
    /// hash probes and one atomic load.
    #[inline]
    pub fn check(&self, check: &Check<'_>) -> Decision {
        if self.state.config.mode == CacheMode::Compact {
            return match compact::check(&self.state, check) {
                compact::Compact::Revoked(r) => Decision::Revoked(r),
                // Fail closed: only the node can tell a false positive.
                compact::Compact::Maybe => Decision::Unavailable,
                compact::Compact::Clean => self.clean(),
            };
        }
        let hit = self.state.read().check(check);
        match hit {
            Some(revoked) => Decision::Revoked(revoked),
            None if self.state.config.policy == StalePolicy::FailClosed
                && self.state.stale.load(Ordering::Relaxed) =>
            {
                Decision::Unavailable
            }
            None => Decision::NotRevoked,
        }
    }

    /// What a lookup that found nothing answers: per the stale policy.
    fn clean(&self) -> Decision {
        if self.state.config.policy == StalePolicy::FailClosed
            && self.state.stale.load(Ordering::Relaxed)
        {
            Decision::Unavailable
        } else {
            Decision::NotRevoked
        }
    }

    /// [`LocalCache::check`], but a compact cache confirms a filter hit
    /// with the node (`GET /v1/check`) and answers what the node says, or
    /// [`Decision::Unavailable`] (treat as revoked) when the node cannot be
    /// reached. A check carrying only an opaque token's hash cannot be
    /// confirmed that way: use [`LocalCache::check_token_confirmed`]. A full
    /// cache answers as [`LocalCache::check`].
    pub async fn check_confirmed(&self, check: &Check<'_>) -> Decision {
        self.confirmed(check, None).await
    }

    /// [`LocalCache::check_token`] with a filter hit confirmed with the
    /// node (`GET /v1/check?token=`), as [`LocalCache::check_confirmed`].
    pub async fn check_token_confirmed(&self, token: &str) -> Result<Decision, JwtError> {
        let decision = self.check_token(token)?;
        if decision != Decision::Unavailable || self.state.config.mode != CacheMode::Compact {
            return Ok(decision);
        }
        let (sha, mut buf) = (Self::sha(token), Vec::new());
        let claims = if jwt::looks_like_jwt(token) {
            Some(jwt::decode_in(token, &mut buf)?)
        } else {
            None
        };
        let check = Check {
            token_sha256: Some(sha),
            ..claims.as_ref().map(|c| c.as_check()).unwrap_or_default()
        };
        Ok(self.confirmed(&check, Some(token)).await)
    }

    async fn confirmed(&self, check: &Check<'_>, token: Option<&str>) -> Decision {
        if self.state.config.mode != CacheMode::Compact {
            return self.check(check);
        }
        match compact::check(&self.state, check) {
            compact::Compact::Revoked(r) => Decision::Revoked(r),
            compact::Compact::Clean => self.clean(),
            compact::Compact::Maybe => {
                let Some(client) = &self.client else {
                    return Decision::Unavailable;
                };
                match compact::confirm(client, check, token).await {
                    Some(Some(r)) => Decision::Revoked(r),
                    Some(None) => self.clean(),
                    None => Decision::Unavailable,
                }
            }
        }
    }

    fn sha(token: &str) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        Sha256::digest(token.as_bytes()).into()
    }

    /// Exact keys in the loaded edge filter (compact mode; 0 otherwise).
    pub fn filter_keys(&self) -> u64 {
        compact::filter_keys(&self.state)
    }

    /// [`LocalCache::check`] for owned claims.
    pub fn check_claims(&self, claims: &Claims) -> Decision {
        self.check(&claims.as_check())
    }

    /// Looks up a raw token as the node's `?token=` does: a JWT by its claims
    /// and by its SHA-256, an opaque token by its SHA-256. The signature is
    /// not checked. A string with two dots that is not a readable JWT is an
    /// error.
    pub fn check_token(&self, token: &str) -> Result<Decision, JwtError> {
        use sha2::{Digest as _, Sha256};
        let sha: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if jwt::looks_like_jwt(token) {
            let mut buf = Vec::new();
            let claims = jwt::decode_in(token, &mut buf)?;
            let check = Check {
                token_sha256: Some(sha),
                ..claims.as_check()
            };
            Ok(self.check(&check))
        } else {
            Ok(self.check(&Check {
                token_sha256: Some(sha),
                ..Check::default()
            }))
        }
    }

    /// Time since the last message from the node.
    pub fn staleness(&self) -> Duration {
        self.state.staleness()
    }

    /// Whether the cache is past its staleness bound (`stale_after`, or an
    /// origin past `max_staleness`), or has loaded nothing yet. Updated by a
    /// ticker a few times per bound, and at once by any message from the
    /// node.
    pub fn is_stale(&self) -> bool {
        self.state.stale.load(Ordering::Relaxed)
    }

    /// The origins staler than [`CacheConfig::max_staleness`] now: the
    /// node's watermarks from its last heartbeat plus that heartbeat's age
    /// (before the first heartbeat, the node itself, of unknown staleness).
    /// Empty without a bound. Under [`StalePolicy::FailOpen`] this is how a
    /// gateway learns that a "not revoked" came while stale, say to pass it
    /// on as `/v1/auth` passes `Veto-Stale`; under fail closed such lookups
    /// answer [`Decision::Unavailable`].
    pub fn stale_origins(&self) -> Vec<StaleOrigin> {
        self.state.stale_origins()
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.state.read().len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the cache knows about itself.
    pub fn status(&self) -> CacheStatus {
        let s = &self.state;
        CacheStatus {
            records: self.len(),
            cursor: s
                .cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            staleness: s.staleness(),
            stale: s.stale.load(Ordering::Relaxed),
            stale_origins: s.stale_origins(),
            connected: s.connected.load(Ordering::Relaxed),
            loads: s.loads.load(Ordering::Relaxed),
            resyncs: s.resyncs.load(Ordering::Relaxed),
        }
    }

    /// A receiver whose value changes after every change to the index (a
    /// record applied or a snapshot loaded), to wait for a revocation to
    /// arrive without polling.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.state.version.subscribe()
    }
}
