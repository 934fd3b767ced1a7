//! The replay cache: the `jti`s of SETs already applied, per transmitter, so a
//! SET delivered twice is stored once.
//!
//! It is bounded two ways: an entry is forgotten `window` seconds after it was
//! seen, and at most `capacity` entries are held (the oldest go first). It lives
//! in memory only, so a restarted node forgets it. Forgetting is safe: revoking
//! is idempotent, so a SET applied a second time revokes nothing new and only
//! adds a duplicate record to the audit trail.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// A transmitter's issuer and a `jti`: keyed by issuer, not by position in
/// the configured list, so that replacing the list keeps what was seen.
type Key = (Arc<str>, Arc<str>);

struct Inner {
    seen: HashSet<Key>,
    /// Keys in the order they were seen, with the time they were seen.
    order: VecDeque<(u64, Key)>,
}

/// Seen `(transmitter, jti)` pairs.
pub(crate) struct ReplayCache {
    window: u64,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ReplayCache {
    pub(crate) fn new(window: u64, capacity: usize) -> ReplayCache {
        ReplayCache {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                seen: HashSet::new(),
                order: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The sets hold plain data that every operation leaves consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn prune(&self, inner: &mut Inner, now: u64) {
        while let Some((at, _)) = inner.order.front() {
            let expired = now.saturating_sub(*at) >= self.window;
            if !expired && inner.order.len() <= self.capacity {
                break;
            }
            if let Some((_, key)) = inner.order.pop_front() {
                inner.seen.remove(&key);
            }
        }
    }

    /// Whether this SET was already applied.
    pub(crate) fn contains(&self, transmitter: &str, jti: &str, now: u64) -> bool {
        let mut inner = self.lock();
        self.prune(&mut inner, now);
        inner
            .seen
            .contains(&(Arc::from(transmitter), Arc::from(jti)))
    }

    /// Records that this SET was applied.
    pub(crate) fn insert(&self, transmitter: &str, jti: &str, now: u64) {
        let mut inner = self.lock();
        let key: Key = (Arc::from(transmitter), Arc::from(jti));
        if inner.seen.insert(key.clone()) {
            inner.order.push_back((now, key));
        }
        self.prune(&mut inner, now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_after_the_window_and_beyond_capacity() {
        let c = ReplayCache::new(100, 3);
        c.insert("i0", "a", 1000);
        assert!(c.contains("i0", "a", 1050));
        assert!(!c.contains("i1", "a", 1050), "jtis are per transmitter");
        assert!(!c.contains("i0", "a", 1100), "forgotten after the window");

        for (i, jti) in ["a", "b", "c", "d"].into_iter().enumerate() {
            c.insert("i0", jti, 2000 + i as u64);
        }
        assert_eq!(c.len(), 3);
        assert!(!c.contains("i0", "a", 2010), "the oldest went first");
        assert!(c.contains("i0", "d", 2010));
    }
}
