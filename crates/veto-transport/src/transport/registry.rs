//! Live connections, configured peers, and the one-connection-per-pair rule.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use quinn::VarInt;
use tokio::sync::watch;

use super::queue::LaneQueue;
use super::{ConnId, ConnStats, Lane, PeerIdentity, PeerState, PeerStatus};

/// A connection shared between its task, the dialler and `Transport`'s methods.
pub(crate) struct ConnShared {
    pub(crate) id: ConnId,
    pub(crate) peer_name: String,
    pub(crate) cert_sha256: [u8; 32],
    pub(crate) remote: SocketAddr,
    pub(crate) dialed: bool,
    pub(crate) since: Instant,
    pub(crate) conn: quinn::Connection,
    queues: [LaneQueue; 2],
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    close_reason: Mutex<Option<String>>,
    gone: watch::Sender<bool>,
}

impl ConnShared {
    pub(crate) fn new(
        id: ConnId,
        peer: PeerIdentity,
        dialed: bool,
        conn: quinn::Connection,
        queue_bytes: [usize; 2],
    ) -> Self {
        ConnShared {
            id,
            peer_name: peer.name,
            cert_sha256: peer.cert_sha256,
            remote: conn.remote_address(),
            dialed,
            since: Instant::now(),
            conn,
            queues: queue_bytes.map(LaneQueue::new),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            close_reason: Mutex::new(None),
            gone: watch::Sender::new(false),
        }
    }

    pub(crate) fn queue(&self, lane: Lane) -> &LaneQueue {
        &self.queues[lane.index()]
    }

    /// Closes the connection; the first reason given is the one reported.
    pub(crate) fn close(&self, code: VarInt, reason: &str) {
        {
            let mut slot = self.close_reason.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(reason.to_owned());
            }
        }
        self.conn.close(code, reason.as_bytes());
    }

    pub(crate) fn close_reason(&self) -> Option<String> {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Resolves once the connection's `Disconnected` event is out and it has
    /// left the registry.
    pub(crate) fn gone(&self) -> watch::Receiver<bool> {
        self.gone.subscribe()
    }

    pub(crate) fn mark_gone(&self) {
        self.gone.send_replace(true);
    }

    pub(crate) fn stats(&self) -> ConnStats {
        let path = self.conn.stats().path;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConnStats {
            peer_name: self.peer_name.clone(),
            cert_sha256: self.cert_sha256,
            remote: self.remote,
            dialed: self.dialed,
            age: self.since.elapsed(),
            rtt: self.conn.rtt(),
            cwnd: path.cwnd,
            lost_packets: path.lost_packets,
            frames_in: get(&self.frames_in),
            frames_out: get(&self.frames_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            urgent_queued: self.queue(Lane::Urgent).queued(),
            bulk_queued: self.queue(Lane::Bulk).queued(),
        }
    }
}

/// Decides which of two connections between the same pair of nodes survives.
///
/// Both ends must reach the same answer from what they both know: the two
/// names and who dialled each connection. The connection dialled by the node
/// whose name sorts first wins. If both were dialled by the same node, the
/// newer wins, because that node only dials while it has no connection: the
/// older one is a leftover it has forgotten.
pub(crate) fn prefer_new(local: &str, peer: &str, new_dialed: bool, old_dialed: bool) -> bool {
    let local_dials_preferred = local < peer;
    let new_preferred = new_dialed == local_dials_preferred;
    let old_preferred = old_dialed == local_dials_preferred;
    new_preferred || !old_preferred
}

/// A configured peer address and its dialler.
pub(crate) struct PeerEntry {
    pub(crate) generation: u64,
    pub(crate) name: Option<String>,
    pub(crate) state: PeerState,
    pub(crate) stop: watch::Sender<bool>,
}

/// What [`Registry::admit`] decided.
pub(crate) enum Admit {
    /// Registered; `replaced` must be closed as a duplicate.
    Accepted { replaced: Option<Arc<ConnShared>> },
    /// A better connection to the same peer exists; close this one.
    Duplicate,
}

#[derive(Default)]
pub(crate) struct Registry {
    next_id: u64,
    next_generation: u64,
    conns: HashMap<ConnId, Arc<ConnShared>>,
    by_name: HashMap<String, ConnId>,
    pub(crate) peers: HashMap<SocketAddr, PeerEntry>,
}

impl Registry {
    pub(crate) fn alloc_id(&mut self) -> ConnId {
        self.next_id += 1;
        ConnId(self.next_id)
    }

    pub(crate) fn alloc_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    pub(crate) fn conn(&self, id: ConnId) -> Option<Arc<ConnShared>> {
        self.conns.get(&id).cloned()
    }

    pub(crate) fn all_conns(&self) -> Vec<Arc<ConnShared>> {
        self.conns.values().cloned().collect()
    }

    pub(crate) fn admit(&mut self, new: &Arc<ConnShared>, local_name: &str) -> Admit {
        let old = self
            .by_name
            .get(&new.peer_name)
            .and_then(|id| self.conns.get(id))
            .cloned();
        if let Some(old) = &old {
            if !prefer_new(local_name, &new.peer_name, new.dialed, old.dialed) {
                return Admit::Duplicate;
            }
        }
        self.conns.insert(new.id, new.clone());
        self.by_name.insert(new.peer_name.clone(), new.id);
        Admit::Accepted { replaced: old }
    }

    pub(crate) fn remove(&mut self, conn: &ConnShared) {
        self.conns.remove(&conn.id);
        if self.by_name.get(&conn.peer_name) == Some(&conn.id) {
            self.by_name.remove(&conn.peer_name);
        }
    }

    /// The connection currently standing for the node at `addr`, if any: by the
    /// name last seen there, or else by remote address.
    pub(crate) fn live_for_peer(&self, addr: SocketAddr) -> Option<Arc<ConnShared>> {
        let by_name = self
            .peers
            .get(&addr)
            .and_then(|p| p.name.as_ref())
            .and_then(|name| self.by_name.get(name))
            .and_then(|id| self.conns.get(id));
        by_name
            .or_else(|| {
                self.by_name
                    .values()
                    .filter_map(|id| self.conns.get(id))
                    .find(|c| c.remote == addr)
            })
            .cloned()
    }

    /// Updates the dialler's view of `addr`, if it is still the current dialler.
    pub(crate) fn set_peer(
        &mut self,
        addr: SocketAddr,
        generation: u64,
        state: Option<PeerState>,
        name: Option<&str>,
    ) {
        if let Some(peer) = self.peers.get_mut(&addr) {
            if peer.generation != generation {
                return;
            }
            if let Some(state) = state {
                peer.state = state;
            }
            if let Some(name) = name {
                peer.name = Some(name.to_owned());
            }
        }
    }

    pub(crate) fn peer_statuses(&self) -> Vec<PeerStatus> {
        let mut out: Vec<_> = self
            .peers
            .iter()
            .map(|(addr, peer)| {
                let conn = self.live_for_peer(*addr).map(|c| c.id);
                PeerStatus {
                    addr: *addr,
                    name: peer.name.clone(),
                    state: if conn.is_some() {
                        PeerState::Connected
                    } else {
                        peer.state
                    },
                    conn,
                }
            })
            .collect();
        out.sort_by_key(|p| p.addr);
        out
    }

    /// Numbers for the `veto_gossip_connections{state}` gauge.
    pub(crate) fn state_counts(&self) -> (usize, usize, usize) {
        let count = |s| self.peers.values().filter(|p| p.state == s).count();
        (
            self.by_name.len(),
            count(PeerState::Dialing),
            count(PeerState::Backoff),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::prefer_new;

    /// Runs the rule on both ends of a pair of connections between x and y, and
    /// returns whether x, and whether y, keeps the second one.
    fn kept(x: &str, y: &str, first_dialed_by_x: bool, second_dialed_by_x: bool) -> (bool, bool) {
        // On x: "dialed" means dialled by x. On y: the reverse.
        let x_keeps_second = prefer_new(x, y, second_dialed_by_x, first_dialed_by_x);
        let y_keeps_second = prefer_new(y, x, !second_dialed_by_x, !first_dialed_by_x);
        (x_keeps_second, y_keeps_second)
    }

    #[test]
    fn both_ends_keep_the_connection_dialled_by_the_smaller_name() {
        for (first_by_x, second_by_x) in [(true, false), (false, true)] {
            let (x, y) = kept("alpha", "beta", first_by_x, second_by_x);
            assert_eq!(x, y, "ends disagree");
            // alpha is x; the kept one must be the one alpha dialled.
            assert_eq!(x, second_by_x);
        }
    }

    #[test]
    fn same_dialer_newer_wins_on_both_ends() {
        for by_x in [true, false] {
            assert_eq!(kept("alpha", "beta", by_x, by_x), (true, true));
            assert_eq!(kept("beta", "alpha", by_x, by_x), (true, true));
        }
    }
}
