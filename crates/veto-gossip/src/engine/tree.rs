//! Who a new record is pushed to: every peer in a small cluster; past
//! [`Config::full_mesh_peers`] established peers, a region-aware tree.
//!
//! In the tree, in the manner of Plumtree's eager edges laid along the
//! network's shape, a record's origin pushes it to every peer of its own
//! region and to one peer of each other region (its *gateway* there); a
//! node that first takes a record in by push from another region pushes it
//! on to the peers of its own region. A record so crosses each long WAN
//! path once and fans out over the short ones: N − 1 pushes per record, not
//! N − 1 from every origin to every node over the WAN, and the push copies
//! of the `echo` module ride only the WAN edges.
//!
//! Each origin has its own gateways, chosen by rendezvous hashing of
//! (origin, peer) among the established peers of a region, so the relaying
//! is spread over a region's nodes, and a gateway that goes away is
//! replaced at once by the next in hash order. The lazy half of Plumtree is
//! anti-entropy: a node the tree missed (a gateway that went down with the
//! record, a relay lost) differs at its next digest round and takes the
//! record in a batch, after the push grace.
//!
//! Records pushed along the tree count as on their way to every peer, not
//! only to the ones pushed to directly, so that anti-entropy does not send
//! them again while the relay is under way.
//!
//! [`Config::full_mesh_peers`]: super::Config::full_mesh_peers

use std::collections::BTreeMap;

use veto_core::{NodeId, Record};

use super::now::Now;
use super::{Engine, PeerKey};

impl Engine {
    /// The established peers, with their node ids and regions.
    fn established(&self) -> impl Iterator<Item = (PeerKey, NodeId, &str)> + '_ {
        self.sessions
            .iter()
            .filter_map(|(key, s)| Some((*key, s.node()?, s.peer_region()?)))
    }

    /// Whether pushes follow the tree rather than the full mesh.
    fn tree_on(&self) -> bool {
        self.established().count() > self.config.full_mesh_peers
    }

    /// Who a record made here is pushed to: every established peer, or, in
    /// the tree, those of this region and one gateway per other region.
    pub(super) fn push_targets(&self) -> Vec<PeerKey> {
        if !self.tree_on() {
            return self.established().map(|(key, ..)| key).collect();
        }
        let origin = self.config.node;
        let mut targets = Vec::new();
        let mut gateways: BTreeMap<&str, (u64, PeerKey)> = BTreeMap::new();
        for (key, node, region) in self.established() {
            if region == self.config.region {
                targets.push(key);
                continue;
            }
            let rank = rendezvous(origin, node);
            let best = gateways.entry(region).or_insert((rank, key));
            if rank > best.0 {
                *best = (rank, key);
            }
        }
        targets.extend(gateways.into_values().map(|(_, key)| key));
        targets
    }

    /// Records new here that came by push (or a push's copy) from `from`:
    /// when that peer is of another region and the tree is on, this node is
    /// their gateway, and pushes them on to the peers of its own region.
    pub(super) fn relay(&mut self, now: Now, from: PeerKey, records: &[Record]) {
        if records.is_empty() || !self.tree_on() {
            return;
        }
        let remote = self
            .sessions
            .get(&from)
            .and_then(|s| s.peer_region())
            .is_some_and(|region| region != self.config.region);
        if !remote {
            return;
        }
        let targets: Vec<PeerKey> = self
            .established()
            .filter(|(key, _, region)| *key != from && *region == self.config.region)
            .map(|(key, ..)| key)
            .collect();
        self.stats.relayed += records.len() as u64;
        self.push(now, &targets, records, false);
    }
}

/// Rendezvous (highest random weight) rank of `peer` as `origin`'s gateway.
fn rendezvous(origin: NodeId, peer: NodeId) -> u64 {
    // SplitMix64's finaliser over the pair: stable across builds.
    let mut x = origin
        .get()
        .rotate_left(32)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ peer.get();
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
