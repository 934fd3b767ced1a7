//! Proof of enforcement in the JSON shape of the HTTP API: receipts (which
//! nodes hold a revocation durably, and so enforce it), what a revoke may
//! wait for, and per-origin freshness watermarks. The node computes them,
//! the API serializes them and the client decodes them.
//!
//! A receipt is `{"id", "complete": bool, "nodes": [{"name", "region",
//! "state": "enforced"|"pending", "enforced_at"?, "last_heard"?}]}`; times are
//! Unix seconds with a fraction.

use serde::{Deserialize, Serialize};

/// Which nodes enforce a revocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Receipt))]
pub struct ReceiptView {
    /// The record's id (`origin-seq`); for a batch, its first record's.
    pub id: String,
    /// Every node enforces it.
    pub complete: bool,
    /// Every node of the cluster this node knows of, itself included, by
    /// name.
    pub nodes: Vec<ReceiptNode>,
}

/// One node's part of a receipt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceiptNode {
    /// The node's name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// `enforced` (it holds the record durably) or `pending`.
    pub state: String,
    /// From when it is known to enforce it (its own clock): no earlier than
    /// the moment it made the record durable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_at: Option<f64>,
    /// When this node last heard of it (its own clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heard: Option<f64>,
}

impl ReceiptNode {
    /// Whether the node enforces the record.
    pub fn enforced(&self) -> bool {
        self.state == ENFORCED
    }
}

/// [`ReceiptNode::state`] of a node that holds the record.
pub const ENFORCED: &str = "enforced";
/// [`ReceiptNode::state`] of a node not known to hold it yet.
pub const PENDING: &str = "pending";

/// The longest a revoke may wait for its receipt, in seconds.
pub const MAX_WAIT_SECS: f64 = 60.0;

/// What a revoke waits for before it answers (`?wait=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Every node enforces it.
    All,
    /// More than half of the nodes enforce it.
    Quorum,
    /// At least this many nodes (this one included) enforce it.
    Nodes(usize),
    /// Every node of each of these regions enforces it.
    Regions(Vec<String>),
}

/// A `wait` or `timeout` that cannot be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadWait(pub String);

impl Wait {
    /// Parses `all`, `quorum`, a positive count, or a comma-separated list of
    /// regions.
    pub fn parse(text: &str) -> Result<Wait, BadWait> {
        let text = text.trim();
        match text {
            "" => Err(BadWait(
                "`wait` is empty; use all, quorum, a count or regions".into(),
            )),
            "all" => Ok(Wait::All),
            "quorum" => Ok(Wait::Quorum),
            _ if text.bytes().all(|b| b.is_ascii_digit()) => match text.parse::<usize>() {
                Ok(0) => Err(BadWait("`wait` of 0 nodes waits for nothing".into())),
                Ok(n) => Ok(Wait::Nodes(n)),
                Err(_) => Err(BadWait(format!("`wait` count {text:?} is too large"))),
            },
            _ => {
                let regions: Vec<String> = text.split(',').map(|r| r.trim().to_owned()).collect();
                if regions.iter().any(String::is_empty) {
                    return Err(BadWait(format!("`wait` {text:?} has an empty region")));
                }
                if regions.len() > 64 || regions.iter().any(|r| r.len() > 128) {
                    return Err(BadWait("`wait` names too many or too long regions".into()));
                }
                Ok(Wait::Regions(regions))
            }
        }
    }

    /// Whether `receipt` meets this wait.
    pub fn met_by(&self, receipt: &ReceiptView) -> bool {
        let enforced = receipt.nodes.iter().filter(|n| n.enforced()).count();
        match self {
            Wait::All => receipt.complete,
            Wait::Quorum => enforced > receipt.nodes.len() / 2,
            Wait::Nodes(n) => enforced >= *n,
            Wait::Regions(regions) => regions.iter().all(|region| {
                receipt
                    .nodes
                    .iter()
                    .filter(|n| &n.region == region)
                    .all(ReceiptNode::enforced)
            }),
        }
    }

    /// The regions named that no node of `receipt` serves.
    pub fn unknown_regions<'a>(&'a self, receipt: &ReceiptView) -> Vec<&'a str> {
        let Wait::Regions(regions) = self else {
            return Vec::new();
        };
        regions
            .iter()
            .filter(|r| !receipt.nodes.iter().any(|n| &&n.region == r))
            .map(String::as_str)
            .collect()
    }
}

/// Parses `?timeout=` seconds: a number in `0..=60`.
pub fn parse_timeout(text: &str) -> Result<f64, BadWait> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| BadWait(format!("`timeout` {text:?} is not a number of seconds")))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(BadWait(format!("`timeout` {text:?} must be 0 or more")));
    }
    if secs > MAX_WAIT_SECS {
        return Err(BadWait(format!(
            "`timeout` {text:?} is over the limit of {MAX_WAIT_SECS} seconds"
        )));
    }
    Ok(secs)
}

/// What this node holds of one origin, and how fresh that is
/// (`/v1/status`'s `origins`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Origin))]
pub struct OriginView {
    /// The origin's writer id, 16 hex digits.
    pub origin: String,
    /// The name of the node it belongs to.
    pub name: String,
    /// Its region.
    pub region: String,
    /// This node holds every record the origin made up to this time (Unix
    /// seconds, the origin's clock); `null` while that is not known.
    pub complete_through: Option<f64>,
    /// When the origin last reported (its clock).
    pub last_heard: Option<f64>,
    /// Seconds from `complete_through` to now; `null` while unknown.
    pub staleness_s: Option<f64>,
}

/// The origins staler than `bound`, with their staleness in seconds (`None`:
/// nothing known of it yet, which counts as stale).
pub fn stale_origins(
    origins: &[OriginView],
    bound: std::time::Duration,
) -> Vec<(String, Option<f64>)> {
    let bound = bound.as_secs_f64();
    origins
        .iter()
        .filter(|o| o.staleness_s.is_none_or(|s| s > bound))
        .map(|o| (o.name.clone(), o.staleness_s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(region: &str, enforced: bool) -> ReceiptNode {
        ReceiptNode {
            name: format!("{region}-{enforced}"),
            region: region.into(),
            state: if enforced { ENFORCED } else { PENDING }.into(),
            enforced_at: enforced.then_some(1.0),
            last_heard: Some(1.0),
        }
    }

    #[test]
    fn waits_parse_and_are_met_as_named() {
        let receipt = ReceiptView {
            id: "x-1".into(),
            complete: false,
            nodes: vec![node("us", true), node("eu", true), node("ap", false)],
        };
        assert!(!Wait::parse("all").unwrap().met_by(&receipt));
        assert!(Wait::parse("quorum").unwrap().met_by(&receipt));
        assert!(Wait::parse("2").unwrap().met_by(&receipt));
        assert!(!Wait::parse("3").unwrap().met_by(&receipt));
        assert!(Wait::parse("us,eu").unwrap().met_by(&receipt));
        assert!(!Wait::parse("eu, ap").unwrap().met_by(&receipt));
        let regions = Wait::parse("us,mars").unwrap();
        assert_eq!(regions.unknown_regions(&receipt), vec!["mars"]);
    }

    #[test]
    fn bad_waits_and_timeouts_are_refused() {
        for bad in ["", "0", "us,,eu", "99999999999999999999999"] {
            assert!(Wait::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["-1", "abc", "61", "NaN", "inf"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_timeout("2.5").unwrap(), 2.5);
        assert_eq!(parse_timeout("0").unwrap(), 0.0);
    }
}
