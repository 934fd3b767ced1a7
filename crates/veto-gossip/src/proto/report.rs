//! What a node says of its own holdings, relayed across the cluster: the
//! facts behind receipts ("which nodes enforce this record?") and freshness
//! watermarks ("everything this origin made up to when is held here?").

use serde::{Deserialize, Serialize};
use veto_core::NodeId;

use super::{check_text, Invalid};

/// The most reports one message may carry.
pub const MAX_REPORTS: usize = 4096;

/// The most `(origin, seq)` entries across all reports of one message.
pub const MAX_REPORT_ENTRIES: usize = 65_536;

/// One node's account of what it holds durably, as it made it at `at`.
///
/// A report is relayed unchanged by every node that receives it, so a node
/// learns of nodes it is not connected to. Reports of one node are ordered by
/// `at`: a receiver keeps the latest and drops older ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The reporting node's writer id (the origin of its own records).
    pub node: NodeId,
    /// The reporter's wall clock when it made the report, nanoseconds since
    /// the Unix epoch. Strictly increasing over one writer id's reports.
    pub at: u64,
    /// What changed since the last body of this node sent on this
    /// connection (the first one sent is whole). `None`: nothing changed, a
    /// heartbeat that only moves `at`.
    pub state: Option<ReportState>,
    /// [`through_digest`] of the whole body: a receiver whose copy differs
    /// (a change it never got) knows its copy is wrong, and waits for a
    /// whole one.
    pub digest: u64,
}

/// An order-dependent digest of a whole `through` list (ascending by
/// origin).
pub fn through_digest<'a>(through: impl IntoIterator<Item = (&'a NodeId, &'a u64)>) -> u64 {
    // FNV-1a over the pairs' bytes: cheap, and stable across builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (origin, seq) in through {
        for b in origin
            .get()
            .to_le_bytes()
            .into_iter()
            .chain(seq.to_le_bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The body of a [`Report`]: who the node is and how far it holds each origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportState {
    /// The node's operator-given name; empty when unchanged since the last
    /// body on the connection.
    pub name: String,
    /// The region it serves; empty when unchanged, as `name`.
    pub region: String,
    /// Per origin, ascending by origin: the node covers every seq `1..=n` of
    /// that origin durably (holds it, or held it and pruned it as expired).
    /// Only origins whose `n` changed since the last body on the connection.
    pub through: Vec<(NodeId, u64)>,
    /// Some origins whose `n` changed are left out, for a later body under
    /// the same time: what the report claims then is only what it lists.
    /// A prompt report to an origin is sent so, with that origin's entry.
    pub partial: bool,
}

/// Checks the limits of a list of reports.
pub(crate) fn check_reports(reports: &[Report]) -> Result<(), Invalid> {
    if reports.len() > MAX_REPORTS {
        return Err(Invalid::TooManyOrigins {
            count: reports.len(),
            limit: MAX_REPORTS,
        });
    }
    let mut entries = 0usize;
    for report in reports {
        let Some(state) = &report.state else {
            continue;
        };
        check_text("name", &state.name)?;
        check_text("region", &state.region)?;
        entries = entries.saturating_add(state.through.len());
        if entries > MAX_REPORT_ENTRIES {
            return Err(Invalid::TooManyRanges {
                count: entries,
                limit: MAX_REPORT_ENTRIES,
            });
        }
        let ascending = state.through.windows(2).all(|w| w[0].0 < w[1].0);
        if !ascending {
            return Err(Invalid::Unordered("through"));
        }
    }
    Ok(())
}
