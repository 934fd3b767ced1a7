//! Counters and samples gathered while a run goes.

use std::collections::BTreeMap;

use veto_gossip::engine::{EngineEvent, Via};
use veto_gossip::proto::MessageKind;

use crate::sched::Time;

/// How many message kinds the protocol has.
const KINDS: usize = MessageKind::ALL.len();

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) messages: [u64; KINDS],
    pub(crate) bytes: [u64; KINDS],
    /// Bytes spent on who-holds-what in frontiers: their `reports` and
    /// `direct` parts (the `Reports` messages count as their own kind).
    pub(crate) report_bytes: u64,
    /// (propagation latency, base one-way latency of that pair).
    pub(crate) latency: Vec<(Time, Time)>,
    pub(crate) revocations: u64,
    pub(crate) acked: u64,
    pub(crate) checks: u64,
    pub(crate) checks_revoked: u64,
    pub(crate) closes: BTreeMap<String, u64>,
    pub(crate) new_by_push: u64,
    pub(crate) new_by_repair: u64,
    pub(crate) duplicates: u64,
    /// Datagram copies of pushes that came after their record: the price of
    /// the copies, kept apart from `duplicates` (records relayed twice).
    pub(crate) echo_copies: u64,
    pub(crate) expired_on_receipt: u64,
    pub(crate) restored: u64,
    /// Records a completed persist stored again under a covered id.
    pub(crate) restored_stored: u64,
    pub(crate) conflicts: u64,
    pub(crate) cleared: u64,
    pub(crate) clock_ahead: u64,
    pub(crate) batches_timed_out: u64,
    pub(crate) persist_failures: u64,
    pub(crate) gc_pruned: u64,
    /// Collector passes skipped because the node's clock was not confirmed.
    pub(crate) gc_paused: u64,
    pub(crate) crashes: u64,
    pub(crate) restarts: u64,
    pub(crate) clock_jumps: u64,
    pub(crate) max_record_bytes: usize,
    /// Records of local revocations refused or failed while writes were
    /// halted (answered 503, never acknowledged).
    pub(crate) revocations_refused: u64,
    /// Times a node halted writes after a failed one.
    pub(crate) halts: u64,
    /// Times a node resumed writes.
    pub(crate) recoveries: u64,
    /// Missing ids reported by nodes at start (sum over starts).
    pub(crate) missing_reported: u64,
    /// Disk faults that destroyed or replaced durable state: restored
    /// backups, clones, cut logs, lost data.
    pub(crate) disk_faults: u64,
}

impl Metrics {
    pub(crate) fn sent(&mut self, kind: MessageKind, bytes: usize) {
        let k = kind.index();
        self.messages[k] += 1;
        self.bytes[k] += bytes as u64;
    }

    pub(crate) fn event(&mut self, e: &EngineEvent) {
        match e {
            EngineEvent::Received {
                via,
                duplicates,
                expired,
                cleared,
                restored,
                conflicts,
                ..
            } => {
                if *via == Via::Echo {
                    self.echo_copies += *duplicates as u64;
                } else {
                    self.duplicates += *duplicates as u64;
                }
                self.expired_on_receipt += *expired as u64;
                self.restored += *restored as u64;
                self.conflicts += *conflicts as u64;
                self.cleared += cleared;
            }
            EngineEvent::PropagationLatency { via, .. } => match via {
                // A copy of a push that came first is still the push.
                Via::Push | Via::Echo => self.new_by_push += 1,
                Via::Repair => self.new_by_repair += 1,
            },
            EngineEvent::ClockAhead { .. } => self.clock_ahead += 1,
            EngineEvent::BatchTimedOut { .. } => self.batches_timed_out += 1,
            EngineEvent::PeerUp { .. }
            | EngineEvent::Unencodable { .. }
            | EngineEvent::Conflict { .. }
            | EngineEvent::DatagramDropped { .. }
            | EngineEvent::ClockVerdict(_) => {}
        }
    }

    /// Counts a connection close by the class of its reason.
    pub(crate) fn closed(&mut self, class: &str) {
        *self.closes.entry(class.to_owned()).or_default() += 1;
    }
}

/// The class of an engine's close reason, and whether the engine may close
/// for it over a transport that keeps its contract (reliable, ordered lanes).
pub(crate) fn close_class(reason: &str) -> (&'static str, bool) {
    if reason.starts_with("peer closed the connection") {
        ("closed by peer", true)
    } else if reason.starts_with("no Hello within") {
        // A Hello can be held up by a partition shorter than the idle timeout.
        ("handshake timeout", true)
    } else if reason.contains("reused") {
        ("batch id reused", false)
    } else if reason.contains("before Hello") {
        ("message before Hello", false)
    } else if reason.contains("second Hello") {
        ("second Hello", false)
    } else if reason.contains("backpressure") {
        ("ignores backpressure", false)
    } else if reason.starts_with("undecodable") || reason.starts_with("invalid") {
        ("bad message", false)
    } else {
        ("other", false)
    }
}

/// The bytes of a frontier or digest frame that carry reports (see
/// [`Metrics::report_bytes`]).
pub(crate) fn report_bytes(kind: MessageKind, frame: &[u8]) -> usize {
    use veto_gossip::proto::{self, Message};
    match (kind, proto::decode(frame)) {
        (
            _,
            Ok(Message::Frontier {
                summary,
                holdings,
                clock,
                indirect,
                expected,
                ..
            }),
        ) => {
            let bare = Message::Frontier {
                summary,
                holdings,
                clock,
                indirect,
                expected,
                reports: Vec::new(),
                direct: None,
            };
            frame.len().saturating_sub(proto::encoded_len(&bare))
        }
        (_, Ok(Message::Digest { state, clock, .. })) => {
            let bare = Message::Digest {
                state,
                clock,
                reports: Vec::new(),
                direct: None,
            };
            frame.len().saturating_sub(proto::encoded_len(&bare))
        }
        _ => 0,
    }
}
