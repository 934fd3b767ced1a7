//! The engine's clock check: this node's wall clock against its peers',
//! from the clock samples their frontiers carry.

use std::collections::BTreeMap;

use super::clock::{self, ClockOffset};
use super::now::Now;
use super::session::Phase;
use super::{ClockCheck, Engine, EngineEvent, PeerKey, RecordSource};

impl Engine {
    /// Whether this node's wall clock agrees with its peers', from the clock
    /// samples of every established connection (one per peer node).
    pub fn clock_check(&self) -> ClockCheck {
        self.check
    }

    /// Computes [`Engine::clock_check`] afresh.
    pub(super) fn measure_clocks(&self) -> ClockCheck {
        let mut by_node: BTreeMap<veto_core::NodeId, ClockOffset> = BTreeMap::new();
        for s in self.sessions.values() {
            if let (Phase::Established { info, .. }, Some(o)) = (&s.phase, s.clock.offset) {
                by_node.insert(info.node, o);
            }
        }
        let offsets: Vec<ClockOffset> = by_node.into_values().collect();
        clock::verdict(&offsets, self.config.max_clock_offset)
    }

    /// The driver saw this node's wall clock step (against a monotonic clock):
    /// every offset measured before is void. The verdict goes back to
    /// [`ClockVerdict::Unconfirmed`] and every peer is asked for a fresh
    /// measurement at once.
    pub fn clock_stepped(&mut self, now: Now, src: &(impl RecordSource + ?Sized)) {
        let peers: Vec<PeerKey> = self
            .sessions
            .iter_mut()
            .map(|(key, s)| {
                s.clock.reset();
                (*key, s.is_established())
            })
            .filter(|(_, established)| *established)
            .map(|(key, _)| key)
            .collect();
        self.update_verdict();
        for peer in peers {
            self.send_frontier(now, peer, src);
        }
    }

    /// Takes the clock check again after an offset or a connection changed,
    /// and reports a change of its verdict as an event.
    pub(super) fn update_verdict(&mut self) {
        let check = self.measure_clocks();
        let changed = check.verdict != self.check.verdict;
        self.check = check;
        if changed {
            self.event(EngineEvent::ClockVerdict(check));
        }
    }
}
