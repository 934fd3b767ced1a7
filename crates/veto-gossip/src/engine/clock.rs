//! Clock offsets between this node and its peers, and the verdict drawn from
//! them: does this node's wall clock agree with the cluster's?
//!
//! Every `Frontier` and `Digest` carries a [`ClockSample`], and a `Hello`
//! the connection's first `sent_at`, which the peer's first digest echoes.
//! With the echo of our own last sample, the receiver computes the round
//! trip and the offset NTP-style (offset = ((t2 - t1) + (t3 - t4)) / 2). A
//! node whose clock is more than the maximum offset away from a strict majority of the peers it has samples of
//! is *skewed* (CockroachDB's rule): its own clock cannot be trusted to decide
//! what has expired, so it must not garbage-collect, nor take cutoffs from it.

use std::collections::VecDeque;
use std::time::Duration;

use super::now::Now;
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

/// The most samples remembered per peer, waiting for their echo. The peer
/// echoes the last one it received, so only a few can be outstanding.
const MAX_SENT: usize = 8;

/// Per-session bookkeeping for the clock exchange.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClockTrack {
    /// The peer's last `sent_at` and our monotonic clock when it arrived.
    last_in: Option<(u64, Duration)>,
    /// Our recent samples: their `sent_at` and our monotonic clock then.
    sent: VecDeque<(u64, Duration)>,
    /// The latest offset measured with a round trip.
    pub(crate) offset: Option<ClockOffset>,
}

fn nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

impl ClockTrack {
    /// The sample to put in a `Frontier` sent at `now`.
    pub(crate) fn sample(&mut self, now: Now) -> ClockSample {
        let (echo, held) = match self.last_in {
            Some((sent_at, at)) => (sent_at, nanos(now.mono.saturating_sub(at))),
            None => (0, 0),
        };
        let sent_at = nanos(now.wall);
        if self.sent.len() >= MAX_SENT {
            self.sent.pop_front();
        }
        self.sent.push_back((sent_at, now.mono));
        ClockSample {
            sent_at,
            echo,
            held,
        }
    }

    /// Takes in a sample received at `now`. Returns whether it carried a
    /// usable echo (so an offset was measured).
    ///
    /// The round trip is measured on the monotonic clock and the offset
    /// against our wall clock *now*, so a step of our wall clock while the
    /// sample was out cannot skew the result. An echo of a sample we do not
    /// remember (too old, or not ours) measures nothing.
    pub(crate) fn receive(&mut self, now: Now, sample: &ClockSample) -> bool {
        self.last_in = Some((sample.sent_at, now.mono));
        if sample.echo == 0 {
            return false;
        }
        let Some(&(_, sent_mono)) = self.sent.iter().rev().find(|(s, _)| *s == sample.echo) else {
            return false;
        };
        let elapsed = i128::from(nanos(now.mono.saturating_sub(sent_mono)));
        let rtt = elapsed - i128::from(sample.held);
        if rtt < 0 {
            // The peer's `held` is wrong.
            return false;
        }
        // The peer's clock at `sent_at`, a half round trip before now.
        let offset = i128::from(sample.sent_at) + rtt / 2 - i128::from(nanos(now.wall));
        self.offset = Some(ClockOffset {
            offset_ns: offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
            uncertainty_ns: u64::try_from(rtt / 2).unwrap_or(u64::MAX),
            measured_at: now.wall,
        });
        true
    }

    /// Our wall clock stepped: what was measured before is void. The next
    /// sample echoes nothing, which asks the peer to answer at once. Samples
    /// still out stay usable, since their echo is measured against the wall
    /// clock at its arrival.
    pub(crate) fn reset(&mut self) {
        self.offset = None;
        self.last_in = None;
    }
}

/// Whether this node's clock agrees with its peers'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockVerdict {
    /// Too few peers measured, or their measurements too uncertain, to say.
    Unconfirmed,
    /// Within the maximum offset, beyond doubt, of a strict majority of the
    /// clocks measured, this node's own included (so of at least half the
    /// peers measured).
    Agrees,
    /// More than the maximum offset away, beyond doubt, from a strict
    /// majority of the peers measured.
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
    /// Of those, how many are within the maximum offset even counting the
    /// measurement's uncertainty.
    pub agree: usize,
    /// This node's clock minus the median peer's, in nanoseconds, if any peer
    /// was measured.
    pub offset_ns: Option<i64>,
}

impl ClockCheck {
    /// No peer measured.
    pub const UNCONFIRMED: ClockCheck = ClockCheck {
        verdict: ClockVerdict::Unconfirmed,
        peers: 0,
        off: 0,
        agree: 0,
        offset_ns: None,
    };

    /// Whether this node may act on its own clock alone (collect what has
    /// expired by it) in a cluster of `peers` other nodes: only when a strict
    /// majority of the cluster's clocks, this node's own included, agree
    /// with it beyond doubt, counting every peer, not only those measured. A
    /// node whose clock is wrong would otherwise trust the first peers it
    /// measures after a redial, which may be wrong the same way. A node with
    /// no peers has nothing to compare with, and may.
    pub fn confirms_clock(&self, peers: usize) -> bool {
        peers == 0 || (self.verdict == ClockVerdict::Agrees && (self.agree + 1) * 2 > peers + 1)
    }
}

/// Draws the verdict from the peers' offsets (peer minus us).
pub(crate) fn verdict(offsets: &[ClockOffset], max_offset: Duration) -> ClockCheck {
    let limit = i128::from(nanos(max_offset));
    // Only a measurement beyond doubt counts either way: beyond the limit, or
    // within it, even if the sample's round trip went all one way.
    let off = offsets
        .iter()
        .filter(|o| i128::from(o.offset_ns).abs() - i128::from(o.uncertainty_ns) > limit)
        .count();
    let agree = offsets
        .iter()
        .filter(|o| i128::from(o.offset_ns).abs() + i128::from(o.uncertainty_ns) <= limit)
        .count();
    let mut sorted: Vec<i64> = offsets.iter().map(|o| o.offset_ns).collect();
    sorted.sort_unstable();
    let median = (!sorted.is_empty()).then(|| sorted[sorted.len() / 2]);
    let verdict = if off * 2 > offsets.len() {
        ClockVerdict::Skewed
    } else if agree > 0 && agree * 2 >= offsets.len() {
        ClockVerdict::Agrees
    } else {
        ClockVerdict::Unconfirmed
    };
    ClockCheck {
        verdict,
        peers: offsets.len(),
        off,
        agree,
        offset_ns: median.map(|m| m.saturating_neg()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    /// A node whose wall clock reads `skew` ahead of true time `t`, and
    /// whose monotonic clock started at `boot`.
    fn at(t: Duration, boot: Duration, skew: Duration) -> Now {
        Now::new(t - boot, t + skew)
    }

    /// Two clocks `skew` apart exchanging samples over a link of one-way
    /// delay `d`: the offset comes out exact, whatever the delay.
    #[test]
    fn the_offset_is_measured_through_the_round_trip() {
        let base = Duration::from_secs(1_700_000_000);
        let d = 80 * MS;
        let skew = Duration::from_secs(3 * 86_400);
        let (mut ours, mut theirs) = (ClockTrack::default(), ClockTrack::default());
        let (our_boot, their_boot) = (base - 10 * S, base - 99 * S);
        // Ours sends at base; theirs (ahead by skew) gets it at base + d.
        let s1 = ours.sample(at(base, our_boot, Duration::ZERO));
        assert!(!theirs.receive(at(base + d, their_boot, skew), &s1));
        // Theirs holds it 5 ms, answers; ours gets it after another d.
        let s2 = theirs.sample(at(base + d + 5 * MS, their_boot, skew));
        assert!(ours.receive(at(base + 2 * d + 5 * MS, our_boot, Duration::ZERO), &s2));
        let o = ours.offset.unwrap();
        assert_eq!(o.offset_ns, skew.as_nanos() as i64);
        assert_eq!(o.uncertainty_ns, d.as_nanos() as u64);
    }

    /// Our clock is put back an hour while our sample is out: the answer
    /// measures the clock as it is now, not half the step.
    #[test]
    fn a_step_while_a_sample_is_out_does_not_skew_the_measurement() {
        let base = Duration::from_secs(1_700_000_000);
        let (d, hour) = (40 * MS, Duration::from_secs(3600));
        let (mut ours, mut theirs) = (ClockTrack::default(), ClockTrack::default());
        let boot = base - 5 * S;
        let s1 = ours.sample(at(base, boot, hour));
        theirs.receive(at(base + d, boot, Duration::ZERO), &s1);
        let s2 = theirs.sample(at(base + d, boot, Duration::ZERO));
        // Our clock was an hour ahead when it sent, and is right now.
        assert!(ours.receive(at(base + 2 * d, boot, Duration::ZERO), &s2));
        let o = ours.offset.unwrap();
        assert_eq!(o.offset_ns, 0);
        assert_eq!(o.uncertainty_ns, d.as_nanos() as u64);
        // An echo of a sample we never sent measures nothing.
        let forged = ClockSample {
            sent_at: 1,
            echo: 12345,
            held: 0,
        };
        ours.reset();
        assert!(!ours.receive(at(base + 3 * d, boot, Duration::ZERO), &forged));
        assert!(ours.offset.is_none());
    }

    #[test]
    fn a_strict_majority_decides() {
        let off_by = |offset_ms: i64, uncertainty_ms: u64| ClockOffset {
            offset_ns: offset_ms * 1_000_000,
            uncertainty_ns: uncertainty_ms * 1_000_000,
            measured_at: S,
        };
        let at = |offset_s: i64| off_by(offset_s * 1000, 50);
        let max = Duration::from_millis(500);
        assert_eq!(verdict(&[], max).verdict, ClockVerdict::Unconfirmed);
        assert_eq!(
            verdict(&[at(0), at(0), at(9)], max).verdict,
            ClockVerdict::Agrees
        );
        // A tie among the peers: this node's own clock decides, as in a
        // cluster of three with one wrong clock.
        assert_eq!(verdict(&[at(0), at(9)], max).verdict, ClockVerdict::Agrees);
        assert_eq!(
            verdict(&[at(0), at(9), at(9)], max).verdict,
            ClockVerdict::Skewed
        );
        let behind = verdict(&[at(3600), at(3600), at(0)], max);
        assert_eq!(behind.verdict, ClockVerdict::Skewed);
        assert_eq!(behind.offset_ns, Some(-3_600_000_000_000));
        assert_eq!(verdict(&[at(-7)], max).verdict, ClockVerdict::Skewed);
        // A measurement too uncertain to tell counts neither way.
        let unsure = verdict(&[off_by(300, 400)], max);
        assert_eq!(
            (unsure.verdict, unsure.off, unsure.agree),
            (ClockVerdict::Unconfirmed, 0, 0)
        );
    }

    #[test]
    fn acting_on_the_clock_needs_a_majority_of_the_cluster() {
        let max = Duration::from_millis(500);
        let one = verdict(
            &[ClockOffset {
                offset_ns: 0,
                uncertainty_ns: 1_000_000,
                measured_at: S,
            }],
            max,
        );
        assert_eq!(one.verdict, ClockVerdict::Agrees);
        assert!(one.confirms_clock(1));
        assert!(one.confirms_clock(2), "two clocks of three");
        assert!(
            !one.confirms_clock(3),
            "two clocks of four are not a majority"
        );
        assert!(!one.confirms_clock(13));
        assert!(ClockCheck::UNCONFIRMED.confirms_clock(0));
        assert!(!ClockCheck::UNCONFIRMED.confirms_clock(1));
    }
}
