//! The engine's side of [`Reports`]: making this node's report, taking in
//! peers', and sending changed ones promptly (see `reports.rs`).

use std::collections::BTreeSet;

use super::reports::Reports;
use super::{Engine, Lane, Now, PeerKey};
use veto_core::NodeId;

use crate::proto::{Message, Report};

impl Engine {
    /// Who holds what across the cluster, as far as this node knows.
    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Refreshes this node's own report; `true` if its body changed.
    pub(super) fn refresh_own_report(&mut self, now: Now) -> bool {
        let node = self.config.node;
        if self.config.report_before_durable {
            // The deliberate bug: records still on their way to disk count.
            let mut claimed = self.durable.clone();
            for id in self.persisting.keys() {
                claimed.insert(*id);
            }
            let (name, region) = (&self.config.name, &self.config.region);
            return self.reports.own(node, name, region, now, &claimed);
        }
        let (name, region) = (&self.config.name, &self.config.region);
        self.reports.own(node, name, region, now, &self.durable)
    }

    /// The reports to put in a frontier (or, with `digest`, a digest) for
    /// `peer`: this node's own, fresh, and those of the nodes the peer is
    /// not connected to, each when newer than what the peer was sent. Only
    /// frontiers count towards sending bodies whole again, so that a digest
    /// between nodes in sync stays small.
    pub(super) fn frontier_reports(
        &mut self,
        now: Now,
        peer: PeerKey,
        digest: bool,
    ) -> Vec<Report> {
        self.refresh_own_report(now);
        let me = self.config.node;
        let round_period = self.round_period();
        let Some(session) = self.sessions.get_mut(&peer) else {
            return Vec::new();
        };
        if !digest && session.reports.next_frontier() {
            session.direct_sent = None;
        }
        let skip = session.node();
        // A cluster's connections come up together: what a peer is connected
        // to in its first seconds says little, and relaying to it then would
        // send every node's report to every peer once.
        // The peer tells what it is connected to with its rounds, so its
        // list is only sure once two have come.
        let settled = now.mono >= session.opened_at + round_period * 2;
        let relayed: Vec<NodeId> = match &session.their_direct {
            Some(direct) if settled => self
                .reports
                .nodes()
                .map(|r| r.node)
                .filter(|n| *n != me && !direct.contains(n))
                .collect(),
            _ => Vec::new(),
        };
        let nodes = std::iter::once(me).chain(relayed);
        self.reports
            .outgoing(&mut session.reports, skip, nodes, None)
    }

    /// The nodes this node is connected to, for a frontier or digest to
    /// `peer`, when they changed since the last one it was sent.
    ///
    /// Not in the connection's first round period: the peer relays nothing
    /// on the strength of a list until two have passed (see
    /// `frontier_reports`), and while a cluster's connections come up
    /// together the list changes with every message, so each connection
    /// would open with a list of the whole cluster several times over. The
    /// first round after one period still brings it in time.
    pub(super) fn direct_for(&mut self, now: Now, peer: PeerKey) -> Option<Vec<NodeId>> {
        let due_at = self.sessions.get(&peer)?.opened_at + self.round_period();
        if now.mono < due_at {
            return None;
        }
        let mut direct: Vec<NodeId> = self.sessions.values().filter_map(|s| s.node()).collect();
        direct.sort_unstable();
        direct.dedup();
        direct.truncate(crate::proto::MAX_INDIRECT_ORIGINS);
        let session = self.sessions.get_mut(&peer)?;
        if session.direct_sent.as_ref() == Some(&direct) {
            return None;
        }
        session.direct_sent = Some(direct.clone());
        Some(direct)
    }

    /// The peers that relay this node's report to origins in `due` it has
    /// no connection to: at most [`super::Config::anti_entropy_peers`],
    /// those whose last list of connections names one of the origins
    /// first, then by rendezvous rank, so that the choice is spread over
    /// the cluster. Sending it to every peer of a large cluster costs a
    /// message per peer each time, mostly while connections come up, when
    /// the origin's own connection brings the report a moment later anyway.
    fn relayers(&self, due: &BTreeSet<NodeId>) -> BTreeSet<PeerKey> {
        let me = self.config.node;
        let mut ranked: Vec<((bool, u64), PeerKey)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_established())
            .filter_map(|(key, s)| {
                let node = s.node()?;
                let knows = s
                    .their_direct
                    .as_ref()
                    .is_some_and(|d| due.iter().any(|o| d.contains(o)));
                Some(((knows, super::tree::rendezvous(me, node)), *key))
            })
            .collect();
        ranked.sort_unstable_by_key(|(rank, _)| std::cmp::Reverse(*rank));
        ranked
            .into_iter()
            .take(self.config.anti_entropy_peers.max(1))
            .map(|(_, key)| key)
            .collect()
    }

    /// Takes in reports from `peer`.
    pub(super) fn on_reports(&mut self, now: Now, peer: PeerKey, reports: Vec<Report>) {
        let me = self.config.node;
        if let Some(session) = self.sessions.get_mut(&peer) {
            self.reports
                .receive(me, now.mono, &mut session.reports, reports);
        }
    }

    /// After each input: if received records became durable here, this
    /// node's report goes at once to their origins (a receipt there waits on
    /// it), or, when no origin is a direct peer, to peers that relay it with
    /// their next frontier or digest: every peer of a small cluster, and
    /// past [`super::Config::full_mesh_peers`] at most
    /// [`super::Config::anti_entropy_peers`] of them, those connected to an
    /// origin first (see `relayers`). Everything else waits for the next
    /// frontier, so a revocation costs one prompt message per node that
    /// takes it in, whatever the size of the cluster; relaying at once
    /// instead floods a large cluster with copies.
    pub(super) fn flush_reports(&mut self, now: Now) {
        let me = self.config.node;
        // Kept current for the node's own receipts and watermarks; a local
        // record travels by push, and the next frontier reports it.
        let refreshed = self.own_report_stale && self.refresh_own_report(now);
        self.own_report_stale = false;
        let due = std::mem::take(&mut self.report_due);
        if !refreshed || due.is_empty() {
            return;
        }
        let peers: Vec<(PeerKey, Option<NodeId>)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_established())
            .map(|(k, s)| (*k, s.node()))
            .collect();
        let origin_is_peer = peers
            .iter()
            .any(|(_, n)| n.is_some_and(|n| due.contains(&n)));
        let relayers = (!origin_is_peer && self.tree_on()).then(|| self.relayers(&due));
        for (peer, node) in peers {
            if origin_is_peer && !node.is_some_and(|n| due.contains(&n)) {
                continue;
            }
            if relayers.as_ref().is_some_and(|r| !r.contains(&peer)) {
                continue;
            }
            let Some(session) = self.sessions.get_mut(&peer) else {
                continue;
            };
            // An origin is sent its own entry only: the receipt it waits for.
            let only = if origin_is_peer { node } else { None };
            let reports = self
                .reports
                .outgoing(&mut session.reports, node, [me], only);
            if !reports.is_empty() {
                self.send(peer, Message::Reports { reports }, Lane::Urgent);
            }
        }
    }
}
