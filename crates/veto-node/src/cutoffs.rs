//! Bulk cutoffs (subject, client, issuer) are taken from this node's clock:
//! what "now" is for them, and when this node may not set them at all.

use std::time::Duration;

use veto_core::Revocation;
use veto_gossip::engine::{ClockCheck, ClockVerdict};

/// Now for cutoffs and bounds: the hybrid clock's reading `hybrid`, so never
/// behind a stamp this node made or took in, but never more than
/// `max_offset` ahead of the wall clock `wall`. A clock that ran ahead and
/// was put right leaves the hybrid clock ahead until real time catches up,
/// and a cutoff taken from it would revoke the tokens issued meanwhile.
pub fn cutoff_now(hybrid: Duration, wall: Duration, max_offset: Duration) -> Duration {
    hybrid.min(wall.saturating_add(max_offset))
}

/// A batch with a bulk cutoff, refused because this node's clock disagrees
/// with its peers': the cutoff would come from a wrong clock.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this node's clock is {offset_ms} ms away from its peers' ({off} of {measured} measured are \
     more than {limit_ms} ms off), so it cannot set a bulk cutoff (subject, client, issuer); \
     revoke at another node, or fix this clock"
)]
pub struct BulkRefused {
    /// This node's clock minus the median peer's, ms.
    pub offset_ms: i64,
    /// Peers more than the maximum offset away.
    pub off: usize,
    /// Peers measured.
    pub measured: usize,
    /// The maximum offset, ms.
    pub limit_ms: u128,
}

/// Whether this node may store `batch` now, by its latest clock check.
pub fn may_set_cutoffs(
    check: &ClockCheck,
    batch: &[Revocation],
    max_offset: Duration,
) -> Result<(), BulkRefused> {
    if check.verdict != ClockVerdict::Skewed || !batch.iter().any(|r| r.target.kind().is_bulk()) {
        return Ok(());
    }
    Err(BulkRefused {
        offset_ms: check.offset_ns.map_or(0, |ns| ns / 1_000_000),
        off: check.off,
        measured: check.peers,
        limit_ms: max_offset.as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use veto_core::Target;

    use super::*;

    fn revocation(target: Target) -> Revocation {
        Revocation {
            target,
            expires_at: 0,
            reason: String::new(),
            actor: "test".into(),
        }
    }

    #[test]
    fn a_skewed_clock_refuses_bulk_cutoffs_only() {
        let skewed = ClockCheck {
            verdict: ClockVerdict::Skewed,
            peers: 2,
            off: 2,
            agree: 0,
            offset_ns: Some(40_000_000_000),
        };
        let token = revocation(Target::Token {
            iss: None,
            jti: "t".into(),
        });
        let subject = revocation(Target::Subject {
            iss: None,
            sub: "alice".into(),
            before: 1,
        });
        let limit = Duration::from_millis(500);
        assert_eq!(
            may_set_cutoffs(&skewed, std::slice::from_ref(&token), limit),
            Ok(())
        );
        let refused = may_set_cutoffs(&skewed, &[token, subject.clone()], limit).unwrap_err();
        assert_eq!(refused.offset_ms, 40_000);
        assert!(refused.to_string().contains("2 of 2 measured"));
        assert_eq!(
            may_set_cutoffs(&ClockCheck::UNCONFIRMED, &[subject], limit),
            Ok(())
        );
    }

    #[test]
    fn now_for_cutoffs_never_runs_ahead_of_the_wall_clock_by_more_than_the_offset() {
        let s = Duration::from_secs;
        assert_eq!(cutoff_now(s(100), s(100), s(1)), s(100));
        assert_eq!(cutoff_now(s(500), s(100), s(1)), s(101));
        assert_eq!(cutoff_now(s(99), s(100), s(1)), s(99));
    }
}
