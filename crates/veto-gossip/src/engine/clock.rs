//! Clock offsets between this node and its peers, and the verdict drawn from
//! them: does this node's wall clock agree with the cluster's?
//!
//! Every `Frontier` carries a [`ClockSample`]. With the echo of our own last
//! sample, the receiver computes the round trip and the offset NTP-style
//! (offset = ((t2 - t1) + (t3 - t4)) / 2). A node whose clock is more than the
//! maximum offset away from a strict majority of the peers it has samples of
//! is *skewed* (CockroachDB's rule): its own clock cannot be trusted to decide
//! what has expired, so it must not garbage-collect, nor take cutoffs from it.

use std::time::Duration;

use crate::proto::ClockSample;

/// What one peer's samples say about the two clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOffset {
    /// The peer's clock minus ours, in nanoseconds.
    pub offset_ns: i64,
    /// Half the round trip of the sample: how wrong `offset_ns` can be.
    pub uncertainty_ns: u64,
    /// Our wall clock when the sample arrived.
    pub measured_at: Duration,
}

/// Per-session bookkeeping for the clock exchange.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClockTrack {
    /// The peer's last `sent_at` and our wall clock when it arrived.
    last_in: Option<(u64, Duration)>,
    /// The latest offset measured with a round trip.
    pub(crate) offset: Option<ClockOffset>,
}

fn nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

impl ClockTrack {
    /// The sample to put in a `Frontier` sent at `now`.
    pub(crate) fn sample(&self, now: Duration) -> ClockSample {
        let (echo, held) = match self.last_in {
            Some((sent_at, at)) => (sent_at, nanos(now.saturating_sub(at))),
            None => (0, 0),
        };
        ClockSample {
            sent_at: nanos(now),
            echo,
            held,
        }
    }

    /// Takes in a sample received at `now`. Returns whether it carried a
    /// usable echo (so an offset was measured).
    pub(crate) fn receive(&mut self, now: Duration, sample: &ClockSample) -> bool {
        self.last_in = Some((sample.sent_at, now));
        let t4 = i128::from(nanos(now));
        let (t1, t3, held) = (
            i128::from(sample.echo),
            i128::from(sample.sent_at),
            i128::from(sample.held),
        );
        if sample.echo == 0 || t1 > t4 {
            return false;
        }
        let rtt = (t4 - t1) - held;
        if rtt < 0 {
            // The echo is not one of ours, or the peer's `held` is wrong.
            return false;
        }
        let offset = ((t3 - held - t1) + (t3 - t4)) / 2;
        self.offset = Some(ClockOffset {
            offset_ns: offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            uncertainty_ns: u64::try_from(rtt / 2).unwrap_or(u64::MAX),
            measured_at: now,
        });
        true
    }
}

/// Whether this node's clock agrees with its peers'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockVerdict {
    /// No peer has been measured yet: nothing to compare with.
    Unconfirmed,
    /// Within the maximum offset of at least half the peers measured.
    Agrees,
    /// More than the maximum offset away from a strict majority of the peers
    /// measured.
    Skewed,
}

impl ClockVerdict {
    /// The name used in status pages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockVerdict::Unconfirmed => "unconfirmed",
            ClockVerdict::Agrees => "ok",
            ClockVerdict::Skewed => "skewed",
        }
    }
}

/// The clock comparison over all peers with a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockCheck {
    /// The verdict.
    pub verdict: ClockVerdict,
    /// Peers with a measured offset.
    pub peers: usize,
    /// Of those, how many are more than the maximum offset away.
    pub off: usize,
    /// This node's clock minus the median peer's, in nanoseconds, if any peer
    /// was measured.
    pub offset_ns: Option<i64>,
}

/// Draws the verdict from the peers' offsets (peer minus us).
pub(crate) fn verdict(offsets: &[ClockOffset], max_offset: Duration) -> ClockCheck {
    let limit = i128::from(nanos(max_offset));
    let off = offsets
        .iter()
        .filter(|o| {
            // Only an offset beyond doubt counts: beyond the limit even if the
            // sample's round trip went all one way.
            i128::from(o.offset_ns).abs() - i128::from(o.uncertainty_ns) > limit
        })
        .count();
    let mut sorted: Vec<i64> = offsets.iter().map(|o| o.offset_ns).collect();
    sorted.sort_unstable();
    let median = (!sorted.is_empty()).then(|| sorted[sorted.len() / 2]);
    let verdict = if offsets.is_empty() {
        ClockVerdict::Unconfirmed
    } else if off * 2 > offsets.len() {
        ClockVerdict::Skewed
    } else {
        ClockVerdict::Agrees
    };
    ClockCheck {
        verdict,
        peers: offsets.len(),
        off,
        offset_ns: median.map(|m| m.saturating_neg()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Two clocks `skew` apart exchanging samples over a link of one-way
    /// delay `d`: the offset comes out exact, whatever the delay.
    #[test]
    fn the_offset_is_measured_through_the_round_trip() {
        let base = Duration::from_secs(1_700_000_000);
        let d = Duration::from_millis(80);
        let skew = Duration::from_secs(3 * 86_400);
        let (mut ours, mut theirs) = (ClockTrack::default(), ClockTrack::default());
        // Ours sends at base; theirs (ahead by skew) gets it at base + d.
        let s1 = ours.sample(base);
        assert!(!theirs.receive(base + d + skew, &s1));
        // Theirs holds it 5 ms, answers; ours gets it after another d.
        let s2 = theirs.sample(base + d + skew + Duration::from_millis(5));
        assert!(ours.receive(base + 2 * d + Duration::from_millis(5), &s2));
        let o = ours.offset.unwrap();
        assert_eq!(o.offset_ns, skew.as_nanos() as i64);
        assert_eq!(o.uncertainty_ns, d.as_nanos() as u64);
    }

    #[test]
    fn a_strict_majority_decides() {
        let at = |offset_s: i64| ClockOffset {
            offset_ns: offset_s * 1_000_000_000,
            uncertainty_ns: 50_000_000,
            measured_at: S,
        };
        let max = Duration::from_millis(500);
        assert_eq!(verdict(&[], max).verdict, ClockVerdict::Unconfirmed);
        assert_eq!(verdict(&[at(0), at(9)], max).verdict, ClockVerdict::Agrees);
        let behind = verdict(&[at(3600), at(3600), at(0)], max);
        assert_eq!(behind.verdict, ClockVerdict::Skewed);
        assert_eq!(behind.offset_ns, Some(-3_600_000_000_000));
        assert_eq!(verdict(&[at(-7)], max).verdict, ClockVerdict::Skewed);
    }
}
