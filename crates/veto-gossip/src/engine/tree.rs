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
//! replaced at once by the next in hash order.
//!
//! The tree is repaired from the origin, which knows who holds its records:
//! every node reports to an origin as soon as its records are durable (the
//! receipts of the `reports` module). A record pushed along the tree is
//! watched for [`RELAY_TIMEOUT`]; a region where some established peer has
//! not reported it by then gets it again through another gateway, one that
//! lacks it (so that it relays it), and the gateway that failed is passed
//! over for later records until its report shows what it missed. That is
//! Plumtree's graft, driven by receipts rather than by lazy announcements: a
//! gateway that died silently, before its connections time out, costs its
//! region one timeout, not an anti-entropy round. Anti-entropy stays the
//! backstop for what the watch gives up on.
//!
//! Records pushed along the tree count as on their way to every peer, not
//! only to the ones pushed to directly, so that anti-entropy does not send
//! them again while the relay is under way.
//!
//! [`Config::full_mesh_peers`]: super::Config::full_mesh_peers

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use veto_core::{NodeId, Record};

use super::now::Now;
use super::{Engine, PeerKey};

/// How long a record pushed along the tree may take to be reported by every
/// peer before its region is sent it again: a WAN round trip each way with
/// room to spare (the push to the gateway, its relay, the disk, the report).
pub(crate) const RELAY_TIMEOUT: Duration = Duration::from_millis(500);

/// A gateway candidate's standing: not suspected first, then its rank.
type Score = (bool, u64);

/// Attempts at a region per watched push, the first included.
const RELAY_ATTEMPTS: u8 = 3;

/// Records watched at most: past it, new pushes are left to anti-entropy.
const MAX_WATCHED: usize = 1 << 16;

/// Pushes along the tree waiting to be reported everywhere, and the gateways
/// that failed one.
#[derive(Default)]
pub(crate) struct RelayWatch {
    /// By (deadline, sequence).
    due: BTreeMap<(Duration, u64), Watched>,
    next: u64,
    records: usize,
    /// Gateways passed over until their report covers this origin's seq.
    suspects: BTreeMap<NodeId, u64>,
}

struct Watched {
    records: Vec<Record>,
    /// The gateways they were pushed to so far.
    tried: BTreeSet<NodeId>,
    /// The highest seq among them.
    last: u64,
    attempt: u8,
}

impl RelayWatch {
    /// When the next watch runs out.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    fn add(&mut self, at: Duration, records: Vec<Record>, tried: BTreeSet<NodeId>, attempt: u8) {
        let Some(last) = records.iter().map(|r| r.id.seq).max() else {
            return;
        };
        if self.records + records.len() > MAX_WATCHED {
            return;
        }
        self.records += records.len();
        let watched = Watched {
            records,
            tried,
            last,
            attempt,
        };
        self.due.insert((at, self.next), watched);
        self.next += 1;
    }
}

impl Engine {
    /// The established peers, with their node ids and regions.
    fn established(&self) -> impl Iterator<Item = (PeerKey, NodeId, &str)> + '_ {
        self.sessions
            .iter()
            .filter_map(|(key, s)| Some((*key, s.node()?, s.peer_region()?)))
    }

    /// Whether pushes follow the tree rather than the full mesh.
    pub(super) fn tree_on(&self) -> bool {
        self.established().count() > self.config.full_mesh_peers
    }

    /// Who `records` made here are pushed to: every established peer, or,
    /// in the tree, those of this region and one gateway per other region;
    /// then watched until every peer reports them.
    pub(super) fn push_targets(&mut self, now: Now, records: &[Record]) -> Vec<PeerKey> {
        if !self.tree_on() {
            return self.established().map(|(key, ..)| key).collect();
        }
        let mut targets: Vec<PeerKey> = self
            .established()
            .filter(|(_, _, region)| *region == self.config.region)
            .map(|(key, ..)| key)
            .collect();
        let gateways = self.gateways(|_| true);
        targets.extend(gateways.iter().map(|(key, _)| *key));
        let tried = gateways.into_iter().map(|(_, node)| node).collect();
        let at = now.mono.saturating_add(RELAY_TIMEOUT);
        self.relay_watch.add(at, records.to_vec(), tried, 1);
        targets
    }

    /// This node's gateway in each other region, among the established
    /// peers that `eligible` admits: the highest in rendezvous order, passing
    /// over suspects while the region has another.
    fn gateways(&self, eligible: impl Fn(NodeId) -> bool) -> Vec<(PeerKey, NodeId)> {
        let me = self.config.node;
        // Per region: (trusted, rank) of the best so far.
        let mut best: BTreeMap<&str, (Score, (PeerKey, NodeId))> = BTreeMap::new();
        for (key, node, region) in self.established() {
            if region == self.config.region || !eligible(node) {
                continue;
            }
            let trusted = self.relay_watch.suspects.get(&node).is_none_or(|seq| {
                self.reports
                    .get(node)
                    .is_some_and(|r| r.through(me) >= *seq)
            });
            let score = (trusted, rendezvous(me, node));
            let entry = best.entry(region).or_insert((score, (key, node)));
            if score > entry.0 {
                *entry = (score, (key, node));
            }
        }
        best.into_values().map(|(_, gateway)| gateway).collect()
    }

    /// Runs the watches that are due: each region where an established peer
    /// has not reported a watched record gets it again through a gateway
    /// not tried yet that lacks it, and a tried gateway that lacks it is
    /// suspected.
    pub(super) fn check_relays(&mut self, now: Now) {
        // Every tick comes here: nothing watched, nothing to count.
        if self.relay_watch.due.is_empty() {
            return;
        }
        if !self.tree_on() {
            self.relay_watch.due.clear();
            self.relay_watch.records = 0;
            return;
        }
        let me = self.config.node;
        while let Some(entry) = self.relay_watch.due.first_entry() {
            if entry.key().0 > now.mono {
                break;
            }
            let mut watched = entry.remove();
            self.relay_watch.records -= watched.records.len();
            let through = |engine: &Engine, node: NodeId| {
                engine.reports.get(node).map_or(0, |r| r.through(me))
            };
            let lacking: BTreeSet<NodeId> = self
                .established()
                .filter(|(_, node, region)| {
                    *region != self.config.region && through(self, *node) < watched.last
                })
                .map(|(_, node, _)| node)
                .collect();
            if lacking.is_empty() {
                continue;
            }
            for node in lacking.intersection(&watched.tried) {
                let seq = self.relay_watch.suspects.entry(*node).or_insert(0);
                *seq = (*seq).max(watched.last);
            }
            let gateways =
                self.gateways(|node| lacking.contains(&node) && !watched.tried.contains(&node));
            let targets: Vec<PeerKey> = gateways.iter().map(|(key, _)| *key).collect();
            watched.tried.extend(gateways.iter().map(|(_, node)| *node));
            let missing: Vec<Record> = watched
                .records
                .iter()
                .filter(|r| lacking.iter().any(|n| through(self, *n) < r.id.seq))
                .cloned()
                .collect();
            self.stats.regrafted += missing.len() as u64;
            self.push(now, &targets, &missing, false);
            if watched.attempt < RELAY_ATTEMPTS && !targets.is_empty() {
                let at = now.mono.saturating_add(RELAY_TIMEOUT);
                let attempt = watched.attempt + 1;
                self.relay_watch.add(at, missing, watched.tried, attempt);
            }
        }
    }

    /// Records new here that came by push (or a push's copy) from `from`:
    /// when that peer is of another region and the tree is on, this node is
    /// their gateway, and pushes them on to the peers of its own region.
    pub(super) fn relay(&mut self, now: Now, from: PeerKey, records: &[Record]) {
        if records.is_empty() || !self.tree_on() {
            return;
        }
        if !self.is_remote(from) {
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
pub(super) fn rendezvous(origin: NodeId, peer: NodeId) -> u64 {
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
