//! Who holds what across the cluster: the latest [`Report`] of every node
//! this one has heard of, directly or through peers.
//!
//! Each node makes a report of itself with every frontier it sends (so an
//! idle node still heartbeats) and, promptly, whenever records it received
//! became durable. A node relays the reports of other nodes only to peers
//! not connected to those nodes (each frontier says whom its sender is
//! connected to, when that changed), so a full mesh carries each node's own
//! report only. A report goes to a
//! connection only when newer than what was sent there, and its body only as
//! the origins whose seq changed since. The cost is a summary per node (one
//! seq per origin), never per record.
//!
//! From the table come receipts (does node N hold record r durably, and
//! since when?) and freshness watermarks (up to when does this node hold
//! everything origin O made?). Every claim errs on the safe side: a
//! checkpoint dropped to bound memory makes an `enforced since` later and a
//! `complete through` earlier, never the other way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use veto_core::{Frontier, NodeId, RecordId};

use super::Now;

use crate::proto::{through_digest, Report, ReportState, MAX_REPORTS, MAX_REPORT_ENTRIES};

/// Checkpoints kept per node and origin.
const MAX_CHECKPOINTS: usize = 32;

/// A seq a node was seen to hold through, and over which span of its reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The node covered `1..=seq` of the origin.
    pub seq: u64,
    /// Its first report showing `seq` (the reporter's wall clock).
    pub first: Duration,
    /// Its last report still showing `seq` and no more.
    pub last: Duration,
}

/// How far one node holds one origin, with the history needed for receipts
/// and watermarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Ascending by seq (and so by time); the last is the current one.
    checkpoints: Vec<Checkpoint>,
}

impl Coverage {
    /// The node covers every seq `1..=through()` of the origin.
    pub fn through(&self) -> u64 {
        self.checkpoints.last().map_or(0, |c| c.seq)
    }

    /// The first report showing `seq` held, if it is held: a time at or after
    /// the moment the node made it durable.
    pub fn since(&self, seq: u64) -> Option<Duration> {
        self.checkpoints
            .iter()
            .find(|c| c.seq >= seq)
            .map(|c| c.first)
    }

    /// The last report in which the node held no more than `held` of the
    /// origin, if any.
    pub fn last_at_most(&self, held: u64) -> Option<Duration> {
        self.checkpoints
            .iter()
            .rev()
            .find(|c| c.seq <= held)
            .map(|c| c.last)
    }

    fn observe(&mut self, seq: u64, at: Duration) {
        // A report never takes back what its node held; if one does, the
        // claims above it go, so nothing is claimed that is not reported.
        self.checkpoints.retain(|c| c.seq <= seq);
        match self.checkpoints.last_mut() {
            Some(c) if c.seq == seq => c.last = c.last.max(at),
            _ => self.checkpoints.push(Checkpoint {
                seq,
                first: at,
                last: at,
            }),
        }
        if self.checkpoints.len() > MAX_CHECKPOINTS {
            self.checkpoints.remove(0);
        }
    }
}

/// The latest known of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    /// Its writer id.
    pub node: NodeId,
    /// Its operator-given name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// When it made its latest report, on its own wall clock.
    pub heard_at: Duration,
    /// When this node took in its latest report, on this node's monotonic
    /// clock: what tells the running life of a restarted node from its ended
    /// ones, whatever any wall clock said.
    pub received_at: Duration,
    /// Per origin, what it holds.
    pub coverage: BTreeMap<NodeId, Coverage>,
    /// Changes whenever the body (name, region, seqs) changes.
    state_version: u64,
}

impl NodeReport {
    /// Whether the node holds `id` durably, and since when (see
    /// [`Coverage::since`]).
    pub fn holds(&self, id: RecordId) -> Option<Duration> {
        self.coverage.get(&id.origin)?.since(id.seq)
    }

    /// How far the node holds `origin`.
    pub fn through(&self, origin: NodeId) -> u64 {
        self.coverage.get(&origin).map_or(0, Coverage::through)
    }

    /// Changes whenever the body (name, region, seqs) changes: a reader
    /// that checked the claims of one version need not check them again.
    pub fn state_version(&self) -> u64 {
        self.state_version
    }
}

/// What one connection was sent, or sent us, of one node's report.
#[derive(Default)]
struct LinkState {
    at: Duration,
    /// The last body under `at` was partial: the rest comes under the same
    /// time.
    open: bool,
    name: String,
    region: String,
    through: BTreeMap<NodeId, u64>,
}

/// What was last sent to, and received from, one connection: bodies go as
/// changes against these.
#[derive(Default)]
pub(crate) struct ReportLink {
    sent: BTreeMap<NodeId, LinkState>,
    received: BTreeMap<NodeId, LinkState>,
    /// Frontiers sent on the connection since bodies last went whole.
    since_whole: u32,
    /// Nodes whose copy received on this connection is known wrong (a
    /// change never arrived), until a body that agrees with its digest.
    wrong: std::collections::BTreeSet<NodeId>,
}

/// Every this many frontiers (digests do not count), bodies go whole again:
/// a transport that lost a message on a live connection (which QUIC never
/// does, but a test network may) costs at most that many frontier
/// exchanges of a stale view. A node with a wrong copy answers every digest
/// with a frontier until it is whole again (see [`ReportLink::has_wrong`]).
const WHOLE_EVERY: u32 = 3;

impl ReportLink {
    /// Counts a frontier; `true` when this one is to carry whole bodies.
    pub(crate) fn next_frontier(&mut self) -> bool {
        self.since_whole += 1;
        if self.since_whole < WHOLE_EVERY {
            return false;
        }
        self.since_whole = 0;
        self.sent.clear();
        true
    }

    /// Whether a report received on this connection is known wrong, so that
    /// a frontier exchange (which brings whole bodies nearer) is due.
    pub(crate) fn has_wrong(&self) -> bool {
        !self.wrong.is_empty()
    }
}

/// Every node's latest report. See the module docs.
#[derive(Default)]
pub struct Reports {
    table: BTreeMap<NodeId, Arc<NodeReport>>,
    /// Bumped on every change of the table, so a driver can tell when to
    /// publish it again.
    version: u64,
    next_state: u64,
}

impl Reports {
    /// Every known node's latest report, this node's own included.
    pub fn nodes(&self) -> impl Iterator<Item = &Arc<NodeReport>> {
        self.table.values()
    }

    /// One node's latest report.
    pub fn get(&self, node: NodeId) -> Option<&Arc<NodeReport>> {
        self.table.get(&node)
    }

    /// A shareable copy of the table (the reports themselves are shared).
    pub fn snapshot(&self) -> BTreeMap<NodeId, Arc<NodeReport>> {
        self.table.clone()
    }

    /// Changes on every update of the table.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Makes this node's own report from its durable frontier; `true` if
    /// its body changed.
    pub(crate) fn own(
        &mut self,
        node: NodeId,
        name: &str,
        region: &str,
        now: Now,
        durable: &Frontier,
    ) -> bool {
        let wall = now.wall;
        // Its own origin is always listed, at 0 before its first record:
        // "made nothing up to `at`" is what a watermark needs of it.
        let mut through: Vec<(NodeId, u64)> = durable
            .origins()
            .map(|(origin, seqs)| (origin, seqs.contiguous()))
            .filter(|(origin, n)| *n > 0 || *origin == node)
            .collect();
        if let Err(at) = through.binary_search_by_key(&node, |(o, _)| *o) {
            through.insert(at, (node, 0));
        }
        // Strictly increasing even if the wall clock steps back, so that
        // peers never take a new report for an old one.
        let at = match self.table.get(&node) {
            Some(prev) if prev.heard_at >= wall => prev.heard_at + Duration::from_nanos(1),
            _ => wall,
        };
        let through: BTreeMap<NodeId, u64> = through.into_iter().collect();
        self.apply(node, at, now.mono, name, region, &through, false)
    }

    /// Takes in reports received on `link`, except those of `me`.
    pub(crate) fn receive(
        &mut self,
        me: NodeId,
        mono: Duration,
        link: &mut ReportLink,
        reports: Vec<Report>,
    ) {
        for report in reports {
            let seen = link.received.entry(report.node).or_default();
            let at = Duration::from_nanos(report.at);
            // Bodies are changes against the last one: one that arrives late
            // (a transport that reorders) must not roll the others back.
            // The same time again is the rest of a body sent in parts (see
            // `outgoing`'s `only`).
            if at < seen.at || (at == seen.at && !(seen.open && report.state.is_some())) {
                continue;
            }
            let mut listed = None;
            match report.state {
                Some(state) => {
                    if state.partial {
                        listed = Some(state.through.clone());
                    }
                    if !state.name.is_empty() || !state.region.is_empty() {
                        seen.name = state.name;
                        seen.region = state.region;
                    }
                    seen.through.extend(state.through);
                }
                // A heartbeat for a body that never arrived (lost, or still
                // behind it): wrong until a whole one comes.
                None if seen.name.is_empty() && seen.through.is_empty() => {
                    link.wrong.insert(report.node);
                    continue;
                }
                None => {}
            }
            seen.at = at;
            seen.open = listed.is_some();
            // A change that never arrived, or changes without the body they
            // change (its name and region went with the first): this copy
            // is wrong until the next whole body.
            let nameless = seen.name.is_empty() && seen.region.is_empty();
            if nameless || through_digest(&seen.through) != report.digest {
                link.received.remove(&report.node);
                link.wrong.insert(report.node);
                continue;
            }
            link.wrong.remove(&report.node);
            if report.node == me
                || self
                    .table
                    .get(&report.node)
                    .is_some_and(|r| r.heard_at >= at)
            {
                continue;
            }
            let (name, region) = (seen.name.clone(), seen.region.clone());
            match listed {
                // Only what it lists is claimed as of `at`: the rest of the
                // copy may be older than that.
                Some(listed) => {
                    let through: BTreeMap<NodeId, u64> = listed.into_iter().collect();
                    self.apply(report.node, at, mono, &name, &region, &through, true);
                }
                None => {
                    let through = &seen.through;
                    self.apply(report.node, at, mono, &name, &region, through, false);
                }
            }
        }
    }

    /// Stores a report newer than the one held; `true` if its body changed.
    /// A `partial` one stores the origins it lists and leaves the report's
    /// time as it was, for the rest to come under the same time.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        node: NodeId,
        at: Duration,
        received: Duration,
        name: &str,
        region: &str,
        through: &BTreeMap<NodeId, u64>,
        partial: bool,
    ) -> bool {
        self.version += 1;
        let entry = self.table.entry(node).or_insert_with(|| {
            Arc::new(NodeReport {
                node,
                name: String::new(),
                region: String::new(),
                heard_at: Duration::ZERO,
                received_at: Duration::ZERO,
                coverage: BTreeMap::new(),
                state_version: 0,
            })
        });
        let report = Arc::make_mut(entry);
        let changed = report.state_version == 0
            || report.name != name
            || report.region != region
            || through
                .iter()
                .any(|(origin, seq)| report.through(*origin) != *seq);
        if !partial {
            report.heard_at = at;
        }
        report.received_at = report.received_at.max(received);
        if changed {
            report.name = name.to_owned();
            report.region = region.to_owned();
            self.next_state += 1;
            report.state_version = self.next_state;
        }
        for (origin, seq) in through {
            report
                .coverage
                .entry(*origin)
                .or_default()
                .observe(*seq, at);
        }
        changed
    }

    /// The reports of `nodes` to send on `link`: those newer than what it
    /// was sent, except `skip` (the peer's own). With `only`, a report's
    /// body carries that one origin's entry, if it changed: the receipt an
    /// origin waits for, without the rest of the node's summary, which the
    /// next frontier or digest brings.
    pub(crate) fn outgoing(
        &self,
        link: &mut ReportLink,
        skip: Option<NodeId>,
        nodes: impl IntoIterator<Item = NodeId>,
        only: Option<NodeId>,
    ) -> Vec<Report> {
        let mut out = Vec::new();
        let mut entries = 0usize;
        for node in nodes {
            let Some(report) = self.table.get(&node) else {
                continue;
            };
            if Some(node) == skip {
                continue;
            }
            let sent = link.sent.entry(node).or_default();
            let first = sent.name.is_empty() && sent.through.is_empty();
            if report.heard_at <= sent.at && !first {
                continue;
            }
            // Only what changed since this connection was last sent it.
            let mut delta: Vec<(NodeId, u64)> = report
                .coverage
                .iter()
                .map(|(origin, c)| (*origin, c.through()))
                .filter(|(origin, seq)| sent.through.get(origin) != Some(seq))
                .collect();
            let changed = delta.len();
            if let Some(only) = only {
                delta.retain(|(origin, _)| *origin == only);
            }
            // Left out now, the rest goes with the next frontier or digest,
            // under the same time.
            let partial = delta.len() < changed;
            if partial && delta.is_empty() && !first {
                // Nothing of the one origin asked for: a heartbeat now would
                // claim the rest unchanged.
                continue;
            }
            let renamed = sent.name != report.name || sent.region != report.region;
            // A report left out now goes with a later message.
            if out.len() >= MAX_REPORTS || entries + delta.len() > MAX_REPORT_ENTRIES {
                if first {
                    link.sent.remove(&node);
                }
                break;
            }
            entries += delta.len();
            // Name and region go only when new to the connection: empty
            // means unchanged.
            let state = (first || renamed || !delta.is_empty()).then(|| ReportState {
                name: if renamed {
                    report.name.clone()
                } else {
                    String::new()
                },
                region: if renamed {
                    report.region.clone()
                } else {
                    String::new()
                },
                through: delta,
                partial,
            });
            if let Some(state) = &state {
                if renamed {
                    sent.name.clone_from(&report.name);
                    sent.region.clone_from(&report.region);
                }
                sent.through.extend(state.through.iter().copied());
            }
            if !partial {
                sent.at = report.heard_at;
            }
            out.push(Report {
                node,
                at: u64::try_from(report.heard_at.as_nanos()).unwrap_or(u64::MAX),
                state,
                digest: through_digest(&sent.through),
            });
        }
        out
    }
}
