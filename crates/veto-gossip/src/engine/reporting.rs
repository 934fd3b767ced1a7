//! The engine's side of [`Reports`]: making this node's report, taking in
//! peers', and sending changed ones promptly (see `reports.rs`).

use super::reports::Reports;
use super::{Engine, Lane, Now, PeerKey};
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
            return self.reports.own(node, name, region, now.wall, &claimed);
        }
        let (name, region) = (&self.config.name, &self.config.region);
        self.reports
            .own(node, name, region, now.wall, &self.durable)
    }

    /// The reports to put in a frontier for `peer`: this node's own, fresh,
    /// and every other newer than what the peer was sent.
    pub(super) fn frontier_reports(&mut self, now: Now, peer: PeerKey) -> Vec<Report> {
        self.refresh_own_report(now);
        let Some(session) = self.sessions.get_mut(&peer) else {
            return Vec::new();
        };
        let skip = session.node();
        self.reports.outgoing(&mut session.reports, skip, |_| true)
    }

    /// Takes in reports from `peer`.
    pub(super) fn on_reports(&mut self, peer: PeerKey, reports: Vec<Report>) {
        let me = self.config.node;
        if let Some(session) = self.sessions.get_mut(&peer) {
            self.reports.receive(me, &mut session.reports, reports);
        }
    }

    /// After each input: if records became durable here, this node's report
    /// goes to every peer at once (a receipt waits on it); a changed report
    /// of another node goes at once to the peers that do not hear that node
    /// directly. Everything else waits for the next frontier.
    pub(super) fn flush_reports(&mut self, now: Now) {
        let me = self.config.node;
        // Kept current for the node's own receipts and watermarks, but sent
        // at once only when received records landed: a local record travels
        // by push, and the next frontier reports it.
        let refreshed = self.own_report_stale && self.refresh_own_report(now);
        self.own_report_stale = false;
        let own = self.report_due && refreshed;
        self.report_due = false;
        let changed = self.reports.take_changed();
        let relay = changed.iter().any(|n| *n != me);
        if !own && !relay {
            return;
        }
        let peers: Vec<PeerKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.is_established())
            .map(|(k, _)| *k)
            .collect();
        for peer in peers {
            let Some(session) = self.sessions.get_mut(&peer) else {
                continue;
            };
            let skip = session.node();
            let indirect = &session.hints.indirect;
            let pick = |n| {
                if n == me {
                    own
                } else {
                    changed.contains(&n) && indirect.contains(&n)
                }
            };
            let reports = self.reports.outgoing(&mut session.reports, skip, pick);
            if !reports.is_empty() {
                self.send(peer, Message::Reports { reports }, Lane::Urgent);
            }
        }
    }
}
