//! Receipts, freshness watermarks and the staleness bound, from the
//! cluster's reports (veto-gossip's `Reports`): the node's answers to "is
//! it dead everywhere yet?" and "how fresh is what I enforce?".
//!
//! A node is named once, by its latest writer id (a restarted node's older
//! ids are lives that ended). Names this node's operator removed are left
//! out. Everything here is computed from reports as received and errs on the
//! safe side: a node is `enforced` only once it reported the record durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use veto_core::receipt::{OriginView, ReceiptNode, ReceiptView, ENFORCED, PENDING};
use veto_core::{NodeId, RecordId};
use veto_gossip::engine::NodeReport;

/// What a node knows of who holds what: a snapshot of the engine's reports
/// and of who this node is.
#[derive(Clone, Debug)]
pub struct Holdings {
    /// This node's writer id.
    pub me: NodeId,
    /// Every node's latest report, this node's own included.
    pub reports: BTreeMap<NodeId, Arc<NodeReport>>,
}

impl Holdings {
    /// Nothing known yet but who this node is.
    pub fn new(me: NodeId) -> Holdings {
        Holdings {
            me,
            reports: BTreeMap::new(),
        }
    }

    /// The latest report of every node name, except those `admits` refuses.
    pub fn current(&self, admits: impl Fn(&str) -> bool) -> Vec<&Arc<NodeReport>> {
        let mut by_name: BTreeMap<&str, &Arc<NodeReport>> = BTreeMap::new();
        for report in self.reports.values() {
            let mine = report.node == self.me;
            if !mine && !admits(&report.name) {
                continue;
            }
            // This node's own life wins over any other life of its name;
            // among others, the one heard from last here (a clock that
            // stepped back leaves a new life's reports dated before an
            // ended one's).
            let replaces = match by_name.get(report.name.as_str()) {
                None => true,
                Some(held) => {
                    mine || (held.node != self.me && report.received_at > held.received_at)
                }
            };
            if replaces {
                by_name.insert(&report.name, report);
            }
        }
        by_name.into_values().collect()
    }

    /// The receipt of `ids` (one record, or a batch: a node enforces a
    /// batch once it holds all of it). `expected` names nodes known to be
    /// in the cluster (configured peers) that may not have reported yet:
    /// those without a report are pending.
    pub fn receipt(
        &self,
        ids: &[RecordId],
        expected: &[String],
        admits: impl Fn(&str) -> bool,
    ) -> ReceiptView {
        let current = self.current(&admits);
        let mut nodes: Vec<ReceiptNode> = current
            .iter()
            .map(|report| {
                let since = ids
                    .iter()
                    .map(|id| report.holds(*id))
                    .try_fold(Duration::ZERO, |latest, at| at.map(|at| latest.max(at)));
                ReceiptNode {
                    name: report.name.clone(),
                    region: report.region.clone(),
                    state: if since.is_some() { ENFORCED } else { PENDING }.to_owned(),
                    enforced_at: since.map(|d| d.as_secs_f64()),
                    last_heard: Some(report.heard_at.as_secs_f64()),
                }
            })
            .collect();
        for name in expected {
            if admits(name) && !nodes.iter().any(|n| &n.name == name) {
                nodes.push(ReceiptNode {
                    name: name.clone(),
                    region: String::new(),
                    state: PENDING.to_owned(),
                    enforced_at: None,
                    last_heard: None,
                });
            }
        }
        nodes.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
        ReceiptView {
            id: ids.first().map(ToString::to_string).unwrap_or_default(),
            complete: !nodes.is_empty() && nodes.iter().all(ReceiptNode::enforced),
            nodes,
        }
    }

    /// Per origin (every current node's writer id), up to when this node
    /// holds everything it made, at wall time `now`.
    pub fn watermarks(&self, now: Duration, admits: impl Fn(&str) -> bool) -> Vec<OriginView> {
        let mine = self.reports.get(&self.me);
        let held = |origin: NodeId| mine.map_or(0, |r| r.through(origin));
        self.current(admits)
            .into_iter()
            .map(|report| {
                let complete = if report.node == self.me {
                    Some(now)
                } else {
                    report
                        .coverage
                        .get(&report.node)
                        .and_then(|c| c.last_at_most(held(report.node)))
                };
                OriginView {
                    origin: report.node.to_string(),
                    name: report.name.clone(),
                    region: report.region.clone(),
                    complete_through: complete.map(|d| d.as_secs_f64()),
                    last_heard: Some(report.heard_at.as_secs_f64()),
                    staleness_s: complete.map(|c| now.saturating_sub(c).as_secs_f64()),
                }
            })
            .collect()
    }
}
