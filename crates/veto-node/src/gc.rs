//! When garbage collection may run: only by a clock most of the cluster
//! confirms. A node whose clock runs ahead would otherwise prune records the
//! cluster still needs.

use veto_gossip::engine::{ClockCheck, ClockVerdict};

/// Why garbage collection must wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcHold {
    /// The wall clock stepped since the clock check was taken: the check is
    /// void until the peers are measured again.
    ClockStepped,
    /// This node's clock is beyond the maximum offset from most of its peers.
    ClockSkew,
    /// Too few of the cluster's clocks confirm this node's yet.
    ClockUnconfirmed,
}

impl GcHold {
    /// The name used in metrics (`reason` label) and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            GcHold::ClockStepped => "clock_stepped",
            GcHold::ClockSkew => "clock_skew",
            GcHold::ClockUnconfirmed => "clock_unconfirmed",
        }
    }
}

/// Whether a node with `peers` other nodes may collect by its own clock now,
/// given its latest clock check and whether its wall clock stepped since
/// that check was taken.
pub fn may_collect(check: &ClockCheck, peers: usize, stepped: bool) -> Result<(), GcHold> {
    if stepped {
        return Err(GcHold::ClockStepped);
    }
    match check.verdict {
        ClockVerdict::Skewed => Err(GcHold::ClockSkew),
        _ if !check.confirms_clock(peers) => Err(GcHold::ClockUnconfirmed),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(verdict: ClockVerdict, peers: usize, agree: usize) -> ClockCheck {
        ClockCheck {
            verdict,
            peers,
            off: peers - agree,
            agree,
            offset_ns: Some(0),
        }
    }

    #[test]
    fn collection_waits_for_most_of_the_cluster() {
        assert_eq!(may_collect(&ClockCheck::UNCONFIRMED, 0, false), Ok(()));
        assert_eq!(
            may_collect(&ClockCheck::UNCONFIRMED, 2, false),
            Err(GcHold::ClockUnconfirmed)
        );
        let ok = check(ClockVerdict::Agrees, 2, 2);
        assert_eq!(may_collect(&ok, 2, false), Ok(()));
        assert_eq!(may_collect(&ok, 2, true), Err(GcHold::ClockStepped));
        // Two peers measured and agreeing, of a cluster of six others.
        assert_eq!(may_collect(&ok, 6, false), Err(GcHold::ClockUnconfirmed));
        let skewed = check(ClockVerdict::Skewed, 2, 0);
        assert_eq!(may_collect(&skewed, 2, false), Err(GcHold::ClockSkew));
    }
}
