//! Noticing that the wall clock stepped, by comparing it with the monotonic
//! clock. A step voids every clock offset measured before it, so the
//! replication engine measures again, and garbage collection waits for that.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time since the Unix epoch. The one place the node reads the OS
/// clock.
pub(crate) fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A reading of both clocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reading {
    wall: Duration,
    mono: Instant,
}

impl Reading {
    /// Both clocks now.
    pub(crate) fn now() -> Reading {
        Reading {
            wall: wall_clock(),
            mono: Instant::now(),
        }
    }

    /// How far the wall clock moved since `self` beyond what the monotonic
    /// clock did, in milliseconds (negative: stepped back).
    pub(crate) fn step_since(&self, later: &Reading) -> i64 {
        let wall = later.wall.as_millis() as i128 - self.wall.as_millis() as i128;
        let mono = later.mono.saturating_duration_since(self.mono).as_millis() as i128;
        (wall - mono).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// Compares successive readings and reports steps larger than a tolerance.
pub(crate) struct StepDetector {
    last: Reading,
    tolerance_ms: i64,
}

impl StepDetector {
    /// A detector for steps larger than `tolerance`.
    pub(crate) fn new(tolerance: Duration) -> StepDetector {
        StepDetector {
            last: Reading::now(),
            tolerance_ms: i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The step since the last call, in ms, if it was larger than the
    /// tolerance.
    pub(crate) fn observe(&mut self) -> Option<i64> {
        let now = Reading::now();
        let step = self.last.step_since(&now);
        self.last = now;
        (step.abs() > self.tolerance_ms).then_some(step)
    }
}
