//! Hybrid logical clock stamps, on top of `uhlc` (Kulkarni et al. 2014).
//!
//! `uhlc` reads physical time through a plain `fn() -> NTP64`. veto's engines must
//! never read the OS clock themselves (the simulator runs many nodes on one
//! simulated clock, each with its own skew), so [`HybridClock`] feeds uhlc the
//! caller's `now` through a thread-local that is set for the duration of each call.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uhlc::{HLCBuilder, Timestamp, HLC, ID, NTP64};

use crate::id::NodeId;

/// A hybrid logical clock stamp: 64-bit NTP format (32 bits of seconds, 32 bits
/// of fraction), whose lowest bits uhlc uses as the logical counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc(pub u64);

impl Hlc {
    /// The stamp for a wall-clock reading, with a zero counter. Readings past
    /// the NTP era (year 2106) saturate to the last representable instant.
    pub fn from_unix(since_epoch: Duration) -> Hlc {
        Hlc(ntp(since_epoch).0)
    }

    /// Whole Unix seconds of the physical part.
    pub fn unix_secs(self) -> u64 {
        u64::from(NTP64(self.0).as_secs())
    }

    /// The physical part as a duration since the Unix epoch.
    pub fn as_unix(self) -> Duration {
        NTP64(self.0).to_duration()
    }
}

/// `NTP64::from` asserts that the seconds fit 32 bits; a stamp must never panic
/// on a bad clock reading, so clamp instead.
fn ntp(since_epoch: Duration) -> NTP64 {
    const LAST: Duration = Duration::new(u32::MAX as u64, 999_999_999);
    NTP64::from(since_epoch.min(LAST))
}

thread_local! {
    static NOW: Cell<u64> = const { Cell::new(0) };
}

fn fed_clock() -> NTP64 {
    NTP64(NOW.with(Cell::get))
}

/// The default tolerance for a peer's clock running ahead of ours.
pub const DEFAULT_MAX_OFFSET: Duration = Duration::from_millis(500);

/// A remote stamp too far ahead of the local wall clock: the record is kept, but
/// the local clock does not jump to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("remote stamp is {ahead:?} ahead of the local clock (limit {limit:?})")]
pub struct ClockAhead {
    /// How far ahead the remote stamp was.
    pub ahead: Duration,
    /// The configured maximum offset.
    pub limit: Duration,
}

/// One node's hybrid logical clock. Time is always passed in.
pub struct HybridClock {
    inner: HLC,
    max_offset: Duration,
}

impl HybridClock {
    /// A clock for `node`, refusing remote stamps more than `max_offset` ahead.
    pub fn new(node: NodeId, max_offset: Duration) -> HybridClock {
        let id = ID::from(NonZeroU64::new(node.get()).unwrap_or(NonZeroU64::MIN));
        let inner = HLCBuilder::new()
            .with_id(id)
            .with_clock(fed_clock)
            .with_max_delta(max_offset)
            .build();
        HybridClock { inner, max_offset }
    }

    fn with_now<T>(now: Duration, f: impl FnOnce() -> T) -> T {
        NOW.with(|c| c.set(ntp(now).0));
        f()
    }

    /// A new stamp for a local event at wall time `now` (since the Unix epoch).
    /// Strictly greater than every stamp this clock issued or observed.
    pub fn stamp(&self, now: Duration) -> Hlc {
        Hlc(Self::with_now(now, || self.inner.new_timestamp())
            .get_time()
            .0)
    }

    /// Raises the clock to at least `floor`, whatever the wall clock says: for
    /// a restart, with the highest stamp this node issued before, so that no
    /// stamp issued after goes back (even if the wall clock stepped back).
    pub fn raise_to(&self, floor: Hlc) {
        let ts = Timestamp::new(NTP64(floor.0), *self.inner.get_id());
        // Fed a wall clock at the floor itself, uhlc takes the stamp in
        // however far ahead of the real wall clock it is.
        let _ = Self::with_now(floor.as_unix(), || self.inner.update_with_timestamp(&ts));
    }

    /// Observes a stamp received from `from` at wall time `now`. A stamp more than
    /// the maximum offset ahead is refused and the clock left alone.
    pub fn observe(&self, now: Duration, from: NodeId, stamp: Hlc) -> Result<(), ClockAhead> {
        let id = ID::from(NonZeroU64::new(from.get()).unwrap_or(NonZeroU64::MIN));
        let ts = Timestamp::new(NTP64(stamp.0), id);
        Self::with_now(now, || self.inner.update_with_timestamp(&ts)).map_err(|_| ClockAhead {
            ahead: stamp.as_unix().saturating_sub(now),
            limit: self.max_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_monotonic_even_when_the_wall_clock_steps_back() {
        let clock = HybridClock::new(NodeId::new(7), DEFAULT_MAX_OFFSET);
        let a = clock.stamp(Duration::from_secs(1_000));
        let b = clock.stamp(Duration::from_secs(999));
        let c = clock.stamp(Duration::from_secs(1_000));
        assert!(a < b && b < c);
        assert_eq!(a.unix_secs(), 1_000);
    }

    #[test]
    fn a_stamp_far_ahead_is_refused_and_not_absorbed() {
        let clock = HybridClock::new(NodeId::new(7), DEFAULT_MAX_OFFSET);
        let now = Duration::from_secs(1_000);
        let future = Hlc::from_unix(now + Duration::from_secs(60));
        let err = clock.observe(now, NodeId::new(8), future).unwrap_err();
        assert_eq!(err.ahead, Duration::from_secs(60));
        assert!(clock.stamp(now) < future);
    }

    #[test]
    fn readings_past_the_ntp_era_saturate_instead_of_panicking() {
        let far = Duration::from_secs(u64::MAX);
        assert_eq!(Hlc::from_unix(far).unix_secs(), u64::from(u32::MAX));
        assert!(Hlc::from_unix(far) > Hlc::from_unix(Duration::from_secs(1_700_000_000)));
        let clock = HybridClock::new(NodeId::new(7), DEFAULT_MAX_OFFSET);
        assert_eq!(clock.stamp(far).unix_secs(), u64::from(u32::MAX));
        let stamp = Hlc::from_unix(Duration::from_secs(1_000));
        assert!(clock.observe(far, NodeId::new(8), stamp).is_ok());
    }

    #[test]
    fn a_raised_clock_never_stamps_below_its_floor() {
        let clock = HybridClock::new(NodeId::new(7), DEFAULT_MAX_OFFSET);
        let floor = Hlc::from_unix(Duration::from_secs(5_000));
        clock.raise_to(floor);
        let s = clock.stamp(Duration::from_secs(1_000));
        assert!(s > floor, "{s:?} <= {floor:?}");
        assert_eq!(s.unix_secs(), 5_000);
        // A floor below the clock changes nothing.
        clock.raise_to(Hlc::from_unix(Duration::from_secs(10)));
        assert!(clock.stamp(Duration::from_secs(1_000)) > s);
    }

    #[test]
    fn a_stamp_slightly_ahead_advances_the_clock() {
        let clock = HybridClock::new(NodeId::new(7), DEFAULT_MAX_OFFSET);
        let now = Duration::from_secs(1_000);
        let near = Hlc::from_unix(now + Duration::from_millis(100));
        clock.observe(now, NodeId::new(8), near).unwrap();
        assert!(clock.stamp(now) > near);
    }
}
