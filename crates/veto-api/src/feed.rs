//! The feed of records that became durable here, numbered by cursor, behind
//! `GET /v1/watch` and the cursor of `GET /v1/snapshot` (see the `watch`
//! module for the cursor format and the stream).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use veto_core::Record;

use crate::view::Detail;

/// Where a watcher is in a node's feed: `<epoch>-<n>`, as in the SSE `id:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The node process's random epoch.
    pub epoch: u64,
    /// The arrival number of the last record seen; 0 before the first.
    pub n: u64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.epoch, self.n)
    }
}

/// A string that is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cursor {0:?}: expected <16 hex digits>-<number>")]
pub struct ParseCursorError(pub String);

impl FromStr for Cursor {
    type Err = ParseCursorError;
    fn from_str(s: &str) -> Result<Cursor, ParseCursorError> {
        let err = || ParseCursorError(s.chars().take(64).collect());
        let (epoch, n) = s.split_once('-').ok_or_else(err)?;
        if epoch.len() != 16 {
            return Err(err());
        }
        Ok(Cursor {
            epoch: u64::from_str_radix(epoch, 16).map_err(|_| err())?,
            n: n.parse().map_err(|_| err())?,
        })
    }
}

/// Limits of a [`Feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedConfig {
    /// How many of the latest records a watcher can resume from.
    pub ring: usize,
    /// How many watch streams may be open at once.
    pub max_watchers: usize,
    /// How many snapshots may be streaming at once.
    pub max_snapshots: usize,
    /// The most records one watcher holds at a time: watchers read the shared
    /// ring in chunks of this size, so a watcher that reads slowly, or not at
    /// all, costs no more than one chunk beyond the ring.
    pub channel: usize,
}

impl Default for FeedConfig {
    fn default() -> FeedConfig {
        FeedConfig {
            ring: 100_000,
            max_watchers: 1_000,
            max_snapshots: 16,
            channel: 256,
        }
    }
}

/// One record in the feed, already in its two JSON forms so that a thousand
/// watchers do not serialise it a thousand times.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) n: u64,
    /// Every field, for `audit` watchers.
    pub(crate) full: Arc<str>,
    /// The enforcement fields only, for `read` watchers.
    pub(crate) enforcement: Arc<str>,
}

impl Event {
    /// The event's JSON in `detail`'s form.
    pub(crate) fn data(&self, detail: Detail) -> &str {
        match detail {
            Detail::Full => &self.full,
            Detail::Enforcement => &self.enforcement,
        }
    }
}

struct Ring {
    events: VecDeque<Event>,
    head: u64,
}

/// Why a cursor cannot be resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resync {
    UnknownEpoch,
    TooFarBehind,
    Ahead,
}

impl Resync {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Resync::UnknownEpoch => "unknown_epoch",
            Resync::TooFarBehind => "too_far_behind",
            Resync::Ahead => "ahead",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Resync::UnknownEpoch => {
                "the cursor is from another run of this node (it restarted): reload GET /v1/snapshot and watch from its cursor"
            }
            Resync::TooFarBehind => {
                "the cursor is older than the records this node keeps for resuming: reload GET /v1/snapshot and watch from its cursor"
            }
            Resync::Ahead => {
                "the cursor is ahead of this node: reload GET /v1/snapshot and watch from its cursor"
            }
        }
    }
}

/// A new watcher's start: the cursor it continues after, and the signal of
/// new records.
pub(crate) struct Subscription {
    pub(crate) head: watch::Receiver<u64>,
    pub(crate) after: Cursor,
}

/// Numbers the records that become durable on a node, keeps the latest for
/// resuming, and fans them out to watchers.
pub struct Feed {
    pub(crate) epoch: u64,
    config: FeedConfig,
    ring: Mutex<Ring>,
    /// The latest cursor number, for watchers waiting on new records.
    head: watch::Sender<u64>,
    watchers: Arc<Semaphore>,
    snapshots: Arc<Semaphore>,
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("head", &self.head())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// A feed for one run of a node. `epoch` must differ between runs: pick it
    /// at random at start. Limits of zero are raised to one.
    pub fn new(epoch: u64, config: FeedConfig) -> Feed {
        let config = FeedConfig {
            ring: config.ring.max(1),
            max_watchers: config.max_watchers.max(1),
            max_snapshots: config.max_snapshots.max(1),
            channel: config.channel.max(1),
        };
        Feed {
            epoch,
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(config.ring.min(4_096)),
                head: 0,
            }),
            head: watch::channel(0).0,
            watchers: Arc::new(Semaphore::new(config.max_watchers)),
            snapshots: Arc::new(Semaphore::new(config.max_snapshots)),
            config,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> FeedConfig {
        self.config
    }

    /// The cursor of the latest record published.
    pub fn head(&self) -> Cursor {
        Cursor {
            epoch: self.epoch,
            n: self.lock().head,
        }
    }

    /// How many watch streams are open.
    pub fn watchers(&self) -> usize {
        self.config.max_watchers - self.watchers.available_permits()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // The ring is consistent after every statement, so a panic elsewhere
        // while it was held leaves nothing half-done.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes records that have just become durable, in the order given.
    /// Call it only after they are durable and readable by
    /// [`crate::Backend::snapshot_records`], so that a snapshot taken at a
    /// cursor holds every record up to it.
    pub fn publish(&self, records: &[Record]) {
        if records.is_empty() {
            return;
        }
        // A record view holds only strings and numbers; should it ever fail
        // to encode, the watcher still learns the id rather than nothing.
        let encode = |r: &Record, detail: Detail| -> Arc<str> {
            match detail.json(r) {
                Ok(json) => Arc::from(json),
                Err(_) => Arc::from(format!("{{\"id\":\"{}\"}}", r.id)),
            }
        };
        let data: Vec<(Arc<str>, Arc<str>)> = records
            .iter()
            .map(|r| (encode(r, Detail::Full), encode(r, Detail::Enforcement)))
            .collect();
        let mut ring = self.lock();
        for (full, enforcement) in data {
            ring.head += 1;
            let event = Event {
                n: ring.head,
                full,
                enforcement,
            };
            if ring.events.len() == self.config.ring {
                ring.events.pop_front();
            }
            ring.events.push_back(event);
        }
        self.head.send_replace(ring.head);
    }

    /// Up to `max` records after number `after`, from the ring; empty when
    /// `after` is the head, [`Resync::TooFarBehind`] once the ring has moved
    /// past it.
    pub(crate) fn read(&self, after: u64, max: usize) -> Result<Vec<Event>, Resync> {
        let ring = self.lock();
        if after >= ring.head {
            return Ok(Vec::new());
        }
        let oldest = ring.head + 1 - ring.events.len() as u64;
        if after + 1 < oldest {
            return Err(Resync::TooFarBehind);
        }
        let skip = usize::try_from(after + 1 - oldest).unwrap_or(usize::MAX);
        Ok(ring.events.iter().skip(skip).take(max).cloned().collect())
    }

    /// Starts a watcher after `after` (or at the present). The watcher then
    /// reads the ring itself with [`Feed::read`], so nothing is missed.
    pub(crate) fn subscribe(&self, after: Option<Cursor>) -> Result<Subscription, Resync> {
        let ring = self.lock();
        let head_rx = self.head.subscribe();
        let head = Cursor {
            epoch: self.epoch,
            n: ring.head,
        };
        let Some(after) = after else {
            return Ok(Subscription {
                head: head_rx,
                after: head,
            });
        };
        if after.epoch != self.epoch {
            return Err(Resync::UnknownEpoch);
        }
        if after.n > ring.head {
            return Err(Resync::Ahead);
        }
        let oldest = ring.head + 1 - ring.events.len() as u64;
        if after.n + 1 < oldest {
            return Err(Resync::TooFarBehind);
        }
        Ok(Subscription {
            head: head_rx,
            after,
        })
    }

    /// A place among the open watch streams, or `None` at the limit.
    pub(crate) fn watcher_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.watchers).try_acquire_owned().ok()
    }

    /// A place among the streaming snapshots, or `None` at the limit.
    pub(crate) fn snapshot_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.snapshots).try_acquire_owned().ok()
    }
}
