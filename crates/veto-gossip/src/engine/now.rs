//! The two clocks an engine reads, passed in with every input.

use std::time::Duration;

/// The time of an input, on two clocks.
///
/// Timers (anti-entropy rounds, ack timeouts, handshake deadlines, backoffs)
/// and round trips follow `mono`, which never steps: a wall clock that NTP
/// puts back by an hour must not postpone every timer by an hour. Stamps,
/// expiry, clock samples and the times shown to operators follow `wall`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Now {
    /// A monotonic clock with any origin (for example the process start).
    pub mono: Duration,
    /// The wall clock: time since the Unix epoch.
    pub wall: Duration,
}

impl Now {
    /// An instant read on both clocks.
    pub fn new(mono: Duration, wall: Duration) -> Now {
        Now { mono, wall }
    }

    /// An instant where both clocks read `t`: for tests and for worlds whose
    /// wall clock never steps.
    pub fn both(t: Duration) -> Now {
        Now { mono: t, wall: t }
    }

    /// The same instant `d` later on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono.saturating_add(d),
            wall: self.wall.saturating_add(d),
        }
    }
}
