//! Redundant copies of eager pushes across regions.
//!
//! A push travels on the urgent lane, a reliable stream: when its packet is
//! lost, nothing comes after it to reveal the loss, and QUIC finds it only by
//! its probe timeout (more than a round trip, doubling with each further
//! loss). On a lossy WAN path that puts a revocation's tail at hundreds of
//! milliseconds. So a push to a peer in another region is also sent a few
//! milliseconds later as one or more datagrams ([`Lane::Datagram`]), each its
//! own packet, which no lost packet before it holds up. Receivers already
//! drop the copies that come second. Peers in this node's own region get no
//! copies: a LAN rarely loses packets, and bytes there are what a large
//! cluster spends most.

use std::collections::BTreeMap;
use std::time::Duration;

use super::now::Now;
use super::output::{Frame, Lane, PeerKey};
use super::Engine;
use crate::proto::MessageKind;

/// Copies of pushes waiting for their time, in the order they are due.
#[derive(Default)]
pub(crate) struct Echoes {
    /// Keyed by (due on the monotonic clock, sequence), so that copies due
    /// at the same moment go out in the order they were made.
    due: BTreeMap<(Duration, u64), (PeerKey, Frame)>,
    next: u64,
}

impl Echoes {
    /// When the first copy is due.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    fn add(&mut self, at: Duration, peer: PeerKey, frame: Frame) {
        self.due.insert((at, self.next), (peer, frame));
        self.next += 1;
    }

    /// Forgets the copies for a connection that is gone.
    pub(crate) fn forget(&mut self, peer: PeerKey) {
        self.due.retain(|_, (p, _)| *p != peer);
    }
}

impl Engine {
    /// Schedules the copies of one push `frame` to `peer`, if the peer is in
    /// another region and the frame fits in a datagram.
    pub(super) fn echo_push(&mut self, now: Now, peer: PeerKey, frame: &Frame) {
        if self.config.push_echoes.is_empty() || frame.len() > self.config.max_echo_bytes {
            return;
        }
        if !self.is_remote(peer) {
            return;
        }
        for after in &self.config.push_echoes {
            self.echoes
                .add(now.mono.saturating_add(*after), peer, frame.clone());
        }
    }

    /// Whether `peer` serves another region than this node (unknown until
    /// its `Hello`: not remote).
    pub(super) fn is_remote(&self, peer: PeerKey) -> bool {
        self.sessions
            .get(&peer)
            .and_then(|s| s.peer_region())
            .is_some_and(|region| region != self.config.region)
    }

    /// Sends every copy now due to a peer still connected.
    pub(super) fn send_due_echoes(&mut self, now: Now) {
        while let Some(entry) = self.echoes.due.first_entry() {
            if entry.key().0 > now.mono {
                break;
            }
            let (peer, frame) = entry.remove();
            if self.sessions.get(&peer).is_some_and(|s| s.is_established()) {
                self.send_frame(peer, frame, Lane::Datagram, MessageKind::Push);
            }
        }
    }
}
