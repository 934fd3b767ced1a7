//! The node's freshness watermarks as of its last heartbeat, aged by the time
//! since: what [`super::CacheConfig::max_staleness`] holds the cache to.
//!
//! A heartbeat says, per origin, how stale the node's copy was when it was
//! sent. The cache's copy is that stale plus the heartbeat's age (measured on
//! this process's monotonic clock from when it arrived, so the two clocks
//! never meet): when heartbeats stop, every origin, the node's own included,
//! goes stale by itself. A node that replicates with nobody lists no origin
//! (it holds all it makes); the node itself then stands for one, as stale as
//! its last heartbeat is old, so that losing it still shows.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use veto_core::receipt::OriginView;

/// An origin staler than the bound, as the cache sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleOrigin {
    /// The name of the node the origin belongs to; the node's URL while no
    /// heartbeat has named any.
    pub name: String,
    /// How stale the cache's copy of it is; `None` when nothing is known of
    /// it yet.
    pub staleness: Option<Duration>,
}

/// The last heartbeat's watermarks and when it arrived.
pub(crate) struct Watermarks {
    /// Names the node when nothing is known yet.
    node: String,
    last: Mutex<Option<(Instant, Vec<OriginView>)>>,
}

/// A heartbeat's staleness, as a Duration (too large for one is as stale as
/// it gets).
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

impl Watermarks {
    pub(crate) fn new(node: String) -> Watermarks {
        Watermarks {
            node,
            last: Mutex::new(None),
        }
    }

    /// A heartbeat with these watermarks arrived now.
    pub(crate) fn set(&self, origins: Vec<OriginView>) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), origins));
    }

    /// Calls `f` with each origin's staleness now, until it returns true;
    /// whether it did. Before any heartbeat, one unknown origin: the node;
    /// after a heartbeat listing none, the node, as old as the heartbeat.
    fn any(&self, mut f: impl FnMut(&str, Option<Duration>) -> bool) -> bool {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            None => f(&self.node, None),
            Some((at, origins)) if origins.is_empty() => f(&self.node, Some(at.elapsed())),
            Some((at, origins)) => {
                let age = at.elapsed();
                origins
                    .iter()
                    .any(|o| f(&o.name, o.staleness_s.map(|s| secs(s).saturating_add(age))))
            }
        }
    }

    /// Whether an origin is staler than `bound` (or not known).
    pub(crate) fn any_stale(&self, bound: Duration) -> bool {
        self.any(|_, s| s.is_none_or(|s| s > bound))
    }

    /// The origins staler than `bound` (or not known), now.
    pub(crate) fn stale(&self, bound: Duration) -> Vec<StaleOrigin> {
        let mut out = Vec::new();
        self.any(|name, staleness| {
            if staleness.is_none_or(|s| s > bound) {
                out.push(StaleOrigin {
                    name: name.to_owned(),
                    staleness,
                });
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(name: &str, staleness_s: Option<f64>) -> OriginView {
        OriginView {
            origin: "00000000000000ab".into(),
            name: name.into(),
            region: "r".into(),
            complete_through: None,
            last_heard: None,
            staleness_s,
        }
    }

    #[test]
    fn nothing_heard_is_stale_and_a_heartbeat_ages() {
        let w = Watermarks::new("http://node".into());
        let bound = Duration::from_millis(300);
        assert_eq!(
            w.stale(bound),
            vec![StaleOrigin {
                name: "http://node".into(),
                staleness: None
            }]
        );
        w.set(vec![
            origin("us", Some(0.0)),
            origin("eu", Some(0.15)),
            origin("ap", None),
        ]);
        let names = |v: Vec<StaleOrigin>| v.into_iter().map(|o| o.name).collect::<Vec<_>>();
        assert_eq!(names(w.stale(bound)), ["ap"]);
        std::thread::sleep(Duration::from_millis(200));
        // eu was 150 ms stale when sent: past 300 ms now, us not yet.
        assert_eq!(names(w.stale(bound)), ["eu", "ap"]);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(names(w.stale(bound)), ["us", "eu", "ap"]);
        w.set(vec![origin("us", Some(0.0))]);
        assert!(!w.any_stale(bound));

        // A node that lists no origin stands for one itself.
        w.set(Vec::new());
        assert!(!w.any_stale(bound));
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(names(w.stale(bound)), ["http://node"]);
    }
}
