//! Proof of enforcement at the node: the latest reports of who holds what,
//! published by the replication driver, and receipts and watermarks made
//! from them (veto-node's `receipts`), including waiting for a receipt.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use veto_api::NodeInfo;
use veto_core::receipt::{OriginView, ReceiptNode, ReceiptView, Wait, ENFORCED, PENDING};
use veto_core::RecordId;
use veto_node::{Enforcer, Holdings};

use crate::node::wall_clock;
use crate::peers::PeerDirectory;

/// The driver's latest [`Holdings`], and everyone waiting on a change.
pub(crate) struct Enforcement {
    holdings: watch::Sender<Arc<Holdings>>,
    peers: Arc<PeerDirectory>,
    /// For the names `peer` records revoke: such a node no longer counts.
    enforcer: Arc<RwLock<Enforcer>>,
    /// This node's name and region, for a receipt made before (or without)
    /// replication: it then lists this node alone.
    me: (String, String),
}

impl Enforcement {
    pub(crate) fn new(
        info: &NodeInfo,
        peers: Arc<PeerDirectory>,
        enforcer: Arc<RwLock<Enforcer>>,
    ) -> Enforcement {
        Enforcement {
            holdings: watch::Sender::new(Arc::new(Holdings::new(info.id))),
            peers,
            enforcer,
            me: (info.name.clone(), info.region.clone()),
        }
    }

    /// A node without replication has no report of itself: it holds what
    /// its store holds (`here`).
    fn with_self(&self, mut receipt: ReceiptView, here: bool) -> ReceiptView {
        if receipt.nodes.iter().any(|n| n.name == self.me.0) {
            return receipt;
        }
        receipt.nodes.push(ReceiptNode {
            name: self.me.0.clone(),
            region: self.me.1.clone(),
            state: if here { ENFORCED } else { PENDING }.to_owned(),
            enforced_at: None,
            last_heard: None,
        });
        receipt.complete = receipt.nodes.iter().all(ReceiptNode::enforced);
        receipt
    }

    /// The driver's new view of who holds what.
    pub(crate) fn publish(&self, holdings: Holdings) {
        self.holdings.send_replace(Arc::new(holdings));
    }

    /// Who counts for receipts and freshness: not removed from the peer
    /// list, and not revoked by name. (A node whose certificate alone was
    /// revoked still counts: it may be back under a new one.)
    fn admits(&self) -> impl Fn(&str) -> bool + '_ {
        |name| {
            self.peers.admits(name)
                && !self
                    .enforcer
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .revoked_peers()
                    .revokes_name(name)
        }
    }

    /// The receipt of `ids`, or `None` if no node is known to hold them
    /// and none of their origins is known here.
    pub(crate) fn receipt(&self, ids: &[RecordId], here: bool) -> Option<ReceiptView> {
        let holdings = self.holdings.borrow().clone();
        let receipt = self.receipt_of(&holdings, ids, here);
        let known = receipt.nodes.iter().any(|n| n.enforced())
            || ids.iter().all(|id| {
                holdings
                    .reports
                    .values()
                    .any(|r| r.through(id.origin) >= id.seq)
            });
        known.then_some(receipt)
    }

    /// The receipt of `ids` from `holdings`: configured peers that have not
    /// reported yet are pending, and without replication this node stands
    /// alone.
    fn receipt_of(&self, holdings: &Holdings, ids: &[RecordId], here: bool) -> ReceiptView {
        // A peer listed under a name is expected by that name before any
        // certificate proved it (and whatever a wrong one proved there).
        let expected: Vec<String> = self
            .peers
            .views()
            .into_iter()
            .filter_map(|p| p.listed_as.or(p.name))
            .collect();
        self.with_self(holdings.receipt(ids, &expected, self.admits()), here)
    }

    /// Waits until the receipt of `ids` meets `wait`, or `timeout` passes;
    /// the receipt as it then stands. Dropping the future stops the wait.
    pub(crate) async fn wait(
        &self,
        ids: &[RecordId],
        wait: &Wait,
        timeout: Duration,
        here: bool,
    ) -> ReceiptView {
        let mut changes = self.holdings.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let holdings = changes.borrow_and_update().clone();
            let receipt = self.receipt_of(&holdings, ids, here);
            if wait.met_by(&receipt) {
                return receipt;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return receipt;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return receipt,
            }
        }
    }

    /// Every current origin's freshness, now.
    pub(crate) fn watermarks(&self) -> Vec<OriginView> {
        let holdings = self.holdings.borrow().clone();
        holdings.watermarks(wall_clock(), self.admits())
    }
}
