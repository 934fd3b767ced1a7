//! The wire protocol between veto nodes: message types and their framing.
//!
//! Each message is one bincode 2 (serde, standard config: varint integers) value
//! carried in one frame: a 4-byte big-endian length, then that many bytes of
//! payload. A payload is at most [`MAX_FRAME_BYTES`] (1 MiB); a longer frame is
//! refused from its header alone, before its body is read or allocated.
//!
//! # Compatibility
//!
//! [`Message::Hello`] (tag 0) and [`Message::Goodbye`] (tag 1) are frozen: their
//! tags and field layouts never change, so two nodes that speak different
//! protocol versions can always read each other's `Hello`, see the mismatch, and
//! part with a `Goodbye` that says why. Every other message is only sent after
//! both sides accepted the other's `Hello`, and may change with
//! [`PROTOCOL_VERSION`].
//!
//! # Lanes and ordering
//!
//! The engine sends on two lanes (see [`crate::engine::Lane`]). A transport must
//! deliver the messages of one lane in order; it need not order one lane against
//! the other. The protocol relies on nothing more.

mod codec;
mod report;
mod summary;
#[cfg(test)]
mod tests;

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use veto_core::{NodeId, Record, RecordId, Target};

pub(crate) use codec::value_len;
pub use codec::{
    decode, encode, encode_frame, encoded_len, hello_version, parse_frame_header, DecodeError,
    EncodeError,
};
pub use report::{through_digest, Report, ReportState, MAX_REPORTS, MAX_REPORT_ENTRIES};
pub use summary::{state_digest, FrontierSummary, StateDigest};

/// The protocol version this build speaks, sent in [`Hello`].
///
/// Version 2 added the clock sample and per-origin holdings to
/// [`Message::Frontier`], and [`Message::Held`]. Version 3 added `indirect` and
/// `expected` to [`Message::Frontier`], so that a node receives each record
/// about once rather than from every peer. Version 4 added `reports` to
/// [`Message::Frontier`], and [`Message::Reports`]: who holds what, across
/// the cluster. Version 5 added the `peer` scope to records (a node's
/// certificate, refused by every node that holds it): a node of version 4
/// could not decode such a record, so the two refuse each other at `Hello`
/// rather than fail on the first one. Version 6 added [`Message::Digest`]:
/// nodes in sync exchange a fixed-size digest of their state rather than
/// their whole frontier. Version 7 added `sent_at` to [`Hello`]: the first
/// digest of a connection echoes it, so that each side measures the clock
/// offset without a second digest. A `Hello` of another version that does
/// not decode as this one is still told apart by its version (see
/// [`hello_version`]).
pub const PROTOCOL_VERSION: u32 = 7;

/// The largest frame payload, in bytes (1 MiB). Decoding refuses anything longer.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Bytes of the length prefix in front of every frame (a big-endian `u32`).
pub const FRAME_HEADER_BYTES: usize = 4;

/// The most records one [`Message::Push`] or [`Message::Records`] may carry.
pub const MAX_RECORDS_PER_MESSAGE: usize = 4096;

/// The most text one record may carry (keys, reason and actor together), in
/// bytes. Records made through the API stay far below it (each field is at most
/// 512 bytes); the bound guarantees that any stored record can be sent again in
/// a frame.
pub const MAX_RECORD_TEXT_BYTES: usize = 32 * 1024;

/// The most seq ranges a [`FrontierSummary`] may list across all origins. A node
/// whose frontier is more fragmented sends a truncated summary.
pub const MAX_SUMMARY_RANGES: usize = 8192;

/// The most seq ranges the `cleared` part of one [`Message::Records`] may list.
pub const MAX_CLEARED_RANGES: usize = 8192;

/// The most seq ranges one [`Message::Held`] may list.
pub const MAX_HELD_RANGES: usize = 8192;

/// The most origins the `indirect` list of one [`Message::Frontier`] may
/// name. A sender that knows more lists fewer, which can only delay a relay
/// by the receiver's push grace.
pub const MAX_INDIRECT_ORIGINS: usize = 4096;

/// The most seq ranges the `expected` part of one [`Message::Frontier`] may
/// list. A sender that expects more lists less, which can only cause
/// duplicates.
pub const MAX_EXPECTED_RANGES: usize = 4096;

/// The longest node name, region or goodbye reason, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

/// Seq ranges of several origins' logs.
pub type OriginRanges = Vec<(NodeId, Vec<RangeInclusive<u64>>)>;

/// One protocol message. Variant order is the wire tag: never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Tag 0, frozen. The first message on a connection, from each side.
    Hello(Hello),
    /// Tag 1, frozen. The sender is closing the connection, and says why.
    Goodbye {
        /// Human-readable reason, for logs.
        reason: String,
    },
    /// What the sender covers durably: the receiver answers with what it lacks.
    Frontier {
        /// The sender's durable frontier, possibly truncated.
        summary: FrontierSummary,
        /// Per origin, a digest of the live records the sender holds of it.
        /// Two nodes that cover the same seqs of an origin but hold different
        /// records of it find out here (see [`Message::Held`]).
        holdings: Vec<(NodeId, Holding)>,
        /// The sender's wall clock, for measuring clock offsets.
        clock: ClockSample,
        /// Origins the sender knows of but is not connected to, or has not
        /// heard from lately. It gets the new records of every other origin
        /// by push, so the receiver relays none of those that reached it by
        /// push within its push grace.
        indirect: Vec<NodeId>,
        /// Seqs the sender lacks and expects from a peer other than the
        /// receiver (their origin, or a peer it ranks first for them): the
        /// receiver leaves them out of its backlog stream. Only a hint to
        /// save duplicates; the next frontier says again what is missing.
        expected: OriginRanges,
        /// The sender's own [`Report`] and the latest it knows of nodes the
        /// receiver is not connected to, each only when newer than what it
        /// last sent the receiver.
        reports: Vec<Report>,
        /// The nodes the sender is connected to, when that changed since its
        /// last frontier on this connection: the receiver relays it the
        /// reports of the others.
        direct: Option<Vec<NodeId>>,
    },
    /// New records, sent eagerly as they are made. Not acknowledged.
    Push {
        /// The records.
        records: Vec<Record>,
    },
    /// A repair or backlog batch, acknowledged with [`Message::Ack`] once the
    /// receiver has made it durable.
    Records {
        /// Per-connection batch number, echoed by the ack.
        batch_id: u64,
        /// Records the receiver lacked, ascending by id within each origin.
        records: Vec<Record>,
        /// Seqs the receiver lacked that the sender covers but has pruned
        /// (expired): the receiver covers them without data and stops asking.
        cleared: OriginRanges,
    },
    /// Everything in batch `batch_id` is durable at the sender of the ack.
    Ack {
        /// The acknowledged batch.
        batch_id: u64,
    },
    /// Of `origin`'s seqs `from..=upto`, the sender holds exactly `held` with
    /// their data (the rest it covers without data: pruned, or lost). Sent when
    /// both sides cover the same seqs of an origin but their holdings differ;
    /// the receiver streams back what it holds and the sender does not.
    Held {
        /// The origin.
        origin: NodeId,
        /// The first seq described.
        from: u64,
        /// The last seq described.
        upto: u64,
        /// The seqs held with data, ascending, within `from..=upto`.
        held: Vec<RangeInclusive<u64>>,
    },
    /// The sender's own report, sent at once rather than with the next
    /// frontier, after records it received became durable: to their
    /// origins, whose receipts wait on it.
    Reports {
        /// The reports, as in [`Message::Frontier`].
        reports: Vec<Report>,
    },
    /// A periodic anti-entropy round between nodes that are probably in
    /// sync: a fixed-size digest of the sender's state instead of its
    /// frontier. A receiver whose own digest differs answers with its
    /// [`Message::Frontier`], and the sender then with its own, so that each
    /// side learns what the other lacks; when they agree nothing more is
    /// sent. What a round costs then no longer grows with the cluster.
    Digest {
        /// [`state_digest`] of the sender's durable frontier and holdings.
        state: StateDigest,
        /// As in [`Message::Frontier`].
        clock: ClockSample,
        /// As in [`Message::Frontier`].
        reports: Vec<Report>,
        /// As in [`Message::Frontier`].
        direct: Option<Vec<NodeId>>,
    },
}

/// The number of message tags this version knows.
pub(crate) const MESSAGE_TAGS: u32 = 9;

/// A digest of the live records one node holds of one origin: how many, and
/// the sum (mod 2^64) of the first 8 bytes of their fingerprints. Order
/// independent, kept up to date incrementally, and equal on two nodes that
/// hold the same records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holding {
    /// Live records held.
    pub count: u64,
    /// Sum of their fingerprints' first 8 bytes (little-endian), wrapping.
    pub sum: u64,
}

impl Holding {
    /// The holding of a per-origin set digest.
    pub fn of(digest: &veto_core::SetDigest) -> Holding {
        Holding {
            count: digest.count(),
            sum: digest.low_limb(),
        }
    }
}

/// A reading of the sender's wall clock, NTP style: with the echo of the last
/// reading received from the peer, the peer can work out the round trip and
/// the offset between the two clocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClockSample {
    /// The sender's wall clock when it sent this, nanoseconds since the Unix
    /// epoch.
    pub sent_at: u64,
    /// The `sent_at` of the last sample the sender received from the peer, or
    /// 0 if none.
    pub echo: u64,
    /// Nanoseconds between receiving that sample and sending this one.
    pub held: u64,
}

/// The handshake. Its layout is frozen (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The sender's permanent node id.
    pub node: NodeId,
    /// The sender's operator-given name.
    pub name: String,
    /// The region the sender serves.
    pub region: String,
    /// The sender's wall clock as it sent this, in nanoseconds since the
    /// Unix epoch: the connection's first clock sample, which the peer's
    /// first digest echoes (see [`ClockSample::sent_at`]).
    pub sent_at: u64,
}

/// Which [`Message`] variant a frame carries, in wire-tag order: what a driver
/// needs of a message it only has the bytes of (metrics, logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageKind {
    /// [`Message::Hello`].
    Hello,
    /// [`Message::Goodbye`].
    Goodbye,
    /// [`Message::Frontier`].
    Frontier,
    /// [`Message::Push`].
    Push,
    /// [`Message::Records`].
    Records,
    /// [`Message::Ack`].
    Ack,
    /// [`Message::Held`].
    Held,
    /// [`Message::Reports`].
    Reports,
    /// [`Message::Digest`].
    Digest,
}

impl MessageKind {
    /// Every kind, in wire-tag order.
    pub const ALL: [MessageKind; MESSAGE_TAGS as usize] = [
        MessageKind::Hello,
        MessageKind::Goodbye,
        MessageKind::Frontier,
        MessageKind::Push,
        MessageKind::Records,
        MessageKind::Ack,
        MessageKind::Held,
        MessageKind::Reports,
        MessageKind::Digest,
    ];

    /// The wire tag, which is also the kind's index in [`MessageKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The message's name, for logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Hello => "Hello",
            MessageKind::Goodbye => "Goodbye",
            MessageKind::Frontier => "Frontier",
            MessageKind::Push => "Push",
            MessageKind::Records => "Records",
            MessageKind::Ack => "Ack",
            MessageKind::Held => "Held",
            MessageKind::Reports => "Reports",
            MessageKind::Digest => "Digest",
        }
    }
}

impl Message {
    /// The message's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        self.message_kind().as_str()
    }

    /// Which variant this is.
    pub fn message_kind(&self) -> MessageKind {
        match self {
            Message::Hello(_) => MessageKind::Hello,
            Message::Goodbye { .. } => MessageKind::Goodbye,
            Message::Frontier { .. } => MessageKind::Frontier,
            Message::Push { .. } => MessageKind::Push,
            Message::Records { .. } => MessageKind::Records,
            Message::Ack { .. } => MessageKind::Ack,
            Message::Held { .. } => MessageKind::Held,
            Message::Reports { .. } => MessageKind::Reports,
            Message::Digest { .. } => MessageKind::Digest,
        }
    }

    /// Checks the limits a well-formed message keeps: counts, lengths, and
    /// non-empty seq ranges starting at 1 or later. [`decode`] calls it; the
    /// engine calls it again on messages handed to it directly.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            Message::Hello(h) => {
                check_text("name", &h.name)?;
                check_text("region", &h.region)
            }
            Message::Goodbye { reason } => check_text("reason", reason),
            Message::Frontier {
                summary,
                holdings,
                indirect,
                expected,
                reports,
                direct,
                ..
            } => {
                report::check_reports(reports)?;
                check_direct(direct.as_deref())?;
                check_ranges(&summary.origins, MAX_SUMMARY_RANGES)?;
                if holdings.len() > MAX_SUMMARY_RANGES {
                    return Err(Invalid::TooManyRanges {
                        count: holdings.len(),
                        limit: MAX_SUMMARY_RANGES,
                    });
                }
                if indirect.len() > MAX_INDIRECT_ORIGINS {
                    return Err(Invalid::TooManyOrigins {
                        count: indirect.len(),
                        limit: MAX_INDIRECT_ORIGINS,
                    });
                }
                check_ranges(expected, MAX_EXPECTED_RANGES)
            }
            Message::Push { records } => check_records(records),
            Message::Records {
                records, cleared, ..
            } => {
                check_records(records)?;
                check_ranges(cleared, MAX_CLEARED_RANGES)
            }
            Message::Ack { .. } => Ok(()),
            Message::Reports { reports } => report::check_reports(reports),
            Message::Digest {
                reports, direct, ..
            } => {
                report::check_reports(reports)?;
                check_direct(direct.as_deref())
            }
            Message::Held {
                origin,
                from,
                upto,
                held,
            } => {
                let bad = |start: u64, end: u64| Invalid::BadRange {
                    origin: *origin,
                    start,
                    end,
                };
                if *from == 0 || from > upto {
                    return Err(bad(*from, *upto));
                }
                if held.len() > MAX_HELD_RANGES {
                    return Err(Invalid::TooManyRanges {
                        count: held.len(),
                        limit: MAX_HELD_RANGES,
                    });
                }
                let mut last = None;
                for r in held {
                    let inside = r.start() <= r.end() && r.start() >= from && r.end() <= upto;
                    let ascending = last.is_none_or(|l: u64| *r.start() > l);
                    if !inside || !ascending {
                        return Err(bad(*r.start(), *r.end()));
                    }
                    last = Some(*r.end());
                }
                Ok(())
            }
        }
    }
}

/// A message that decodes but breaks the protocol's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A text field is longer than [`MAX_TEXT_BYTES`].
    #[error("`{field}` is {len} bytes; the limit is {MAX_TEXT_BYTES}")]
    TextTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// More records than [`MAX_RECORDS_PER_MESSAGE`].
    #[error("{count} records in one message; the limit is {MAX_RECORDS_PER_MESSAGE}")]
    TooManyRecords {
        /// How many there were.
        count: usize,
    },
    /// A record with seq 0 (seqs start at 1).
    #[error("record {0} has seq 0")]
    ZeroSeq(NodeId),
    /// A record carrying more than [`MAX_RECORD_TEXT_BYTES`] of text.
    #[error("record {id} carries {len} bytes of text; the limit is {MAX_RECORD_TEXT_BYTES}")]
    RecordTooLarge {
        /// The record.
        id: RecordId,
        /// Its text bytes.
        len: usize,
    },
    /// An empty range, or one that includes seq 0.
    #[error("bad seq range {start}..={end} for origin {origin}")]
    BadRange {
        /// The origin.
        origin: NodeId,
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
    },
    /// More origins than the message allows.
    #[error("{count} origins in one list; the limit is {limit}")]
    TooManyOrigins {
        /// How many there were.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A list that must be in ascending order is not.
    #[error("`{0}` is not in ascending order")]
    Unordered(&'static str),
    /// More ranges than the message allows.
    #[error("{count} seq ranges in one message; the limit is {limit}")]
    TooManyRanges {
        /// How many there were.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

fn check_direct(direct: Option<&[NodeId]>) -> Result<(), Invalid> {
    match direct {
        Some(direct) if direct.len() > MAX_INDIRECT_ORIGINS => Err(Invalid::TooManyOrigins {
            count: direct.len(),
            limit: MAX_INDIRECT_ORIGINS,
        }),
        _ => Ok(()),
    }
}

fn check_text(field: &'static str, value: &str) -> Result<(), Invalid> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(Invalid::TextTooLong {
            field,
            len: value.len(),
        });
    }
    Ok(())
}

/// Bytes of text a record carries: what makes records differ in size.
pub(crate) fn record_text_bytes(record: &Record) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let target = match &record.target {
        Target::Token { iss, jti } => opt(iss) + jti.len(),
        Target::TokenHash { .. } => 32,
        Target::Session { iss, sid } => opt(iss) + sid.len(),
        Target::Subject { iss, sub, .. } => opt(iss) + sub.len(),
        Target::Client { iss, client_id, .. } => opt(iss) + client_id.len(),
        Target::Issuer { iss, .. } => iss.len(),
        Target::Key { iss, kid } => opt(iss) + kid.len(),
        Target::Peer { name, cert_sha256 } => opt(name) + cert_sha256.map_or(0, |_| 32),
    };
    target + record.reason.len() + record.actor.len()
}

fn check_records(records: &[Record]) -> Result<(), Invalid> {
    if records.len() > MAX_RECORDS_PER_MESSAGE {
        return Err(Invalid::TooManyRecords {
            count: records.len(),
        });
    }
    for r in records {
        if r.id.seq == 0 {
            return Err(Invalid::ZeroSeq(r.id.origin));
        }
        let len = record_text_bytes(r);
        if len > MAX_RECORD_TEXT_BYTES {
            return Err(Invalid::RecordTooLarge { id: r.id, len });
        }
    }
    Ok(())
}

fn check_ranges(origins: &OriginRanges, limit: usize) -> Result<(), Invalid> {
    let count: usize = origins.iter().map(|(_, r)| r.len()).sum();
    if count > limit {
        return Err(Invalid::TooManyRanges { count, limit });
    }
    for (origin, ranges) in origins {
        for r in ranges {
            if *r.start() == 0 || r.start() > r.end() {
                return Err(Invalid::BadRange {
                    origin: *origin,
                    start: *r.start(),
                    end: *r.end(),
                });
            }
        }
    }
    Ok(())
}
