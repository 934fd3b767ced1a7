//! The sending side: eager pushes, and the backlog stream a peer's frontier
//! asks for.

use super::now::Now;
use std::collections::VecDeque;
use std::ops::RangeInclusive;

use veto_core::{Frontier, NodeId, Record};

use super::config::Config;
use super::session::Inflight;
use super::source::{RecordSource, SourceUnavailable};
use super::{Engine, Frame, Lane, PeerKey};
use crate::proto::value_len;
use crate::proto::{Message, MessageKind, OriginRanges, MAX_CLEARED_RANGES};

/// Upper bounds on the encoded size of a batch's parts, to keep batches under
/// the byte budget without encoding them twice.
const BATCH_OVERHEAD: usize = 32;
const CLEARED_RANGE_BYTES: usize = 20 + 16;

/// Seq ranges per origin, one entry per range.
pub(crate) type Spans = Vec<(NodeId, RangeInclusive<u64>)>;

impl Engine {
    /// Pushes new local records to the peers the tree names (every
    /// established peer in a small cluster; see the `tree` module).
    pub(super) fn push_to_peers(&mut self, now: Now, records: &[Record]) {
        let targets = self.push_targets(now, records);
        self.push(now, &targets, records, true);
    }

    /// Pushes `records` to `targets` in messages within the batch limits,
    /// each encoded once and its bytes shared by all of them. With
    /// `everywhere`, the records count as on their way to every established
    /// peer, since those not pushed to directly get them by relay.
    pub(super) fn push(
        &mut self,
        now: Now,
        targets: &[PeerKey],
        records: &[Record],
        everywhere: bool,
    ) {
        let Some(&first) = targets.first() else {
            return;
        };
        let chunks: Vec<(Frame, usize, Spans)> = chunk(records, &self.config)
            .into_iter()
            .filter_map(|records| {
                let spans = spans_of(&records);
                let count = records.len();
                let frame = self.encode(first, &Message::Push { records })?;
                Some((frame, count, spans))
            })
            .collect();
        for &peer in targets {
            for (frame, count, spans) in &chunks {
                if let Some(session) = self.sessions.get_mut(&peer) {
                    session.stats.records_out += *count as u64;
                    session.log_push(now, self.config.push_grace, spans.clone());
                }
                self.send_frame(peer, frame.clone(), Lane::Urgent, MessageKind::Push);
                self.echo_push(now, peer, frame);
            }
        }
        if everywhere {
            let grace = self.config.push_grace;
            for (key, session) in self.sessions.iter_mut() {
                if session.is_established() && !targets.contains(key) {
                    for (_, _, spans) in &chunks {
                        session.log_push(now, grace, spans.clone());
                    }
                }
            }
        }
    }

    /// Recomputes what to stream to `peer` from its latest frontier: what this
    /// node covers and the peer lacks, less what is already on its way.
    pub(super) fn plan_backlog(&mut self, now: Now, peer: PeerKey) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.expire_pushes(now, self.config.push_grace);
        let Some(mut coming) = session.their.clone() else {
            return;
        };
        let on_the_way = session
            .inflight
            .iter()
            .flat_map(|b| b.spans.iter())
            .chain(session.pushed.iter().flat_map(|p| p.spans.iter()));
        for (origin, range) in on_the_way {
            coming.insert_range(*origin, range.clone());
        }
        self.held_back(now, peer, &mut coming);
        let need = self
            .durable
            .missing_in(&coming)
            .into_iter()
            .flat_map(|(origin, ranges)| ranges.into_iter().map(move |r| (origin, r)))
            .collect();
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.need = need;
        }
    }

    /// Sends backlog batches to `peer` while its window has room.
    pub(super) fn pump(&mut self, now: Now, peer: PeerKey, src: &(impl RecordSource + ?Sized)) {
        loop {
            let Some(session) = self.sessions.get_mut(&peer) else {
                return;
            };
            if session.retry_at.is_some_and(|t| now.mono < t) {
                return;
            }
            session.retry_at = None;
            if !session.is_established()
                || (session.need.is_empty() && session.repair.is_empty())
                || session.inflight.len() >= self.config.window
            {
                return;
            }
            // Repairs of data the peer covers skip what is expired here: the
            // peer most likely collected it rightly, and takes back only
            // what it holds as live anyway.
            let (queue, expired_before) = if session.need.is_empty() {
                let grace = self.config.gc_grace.as_secs();
                (
                    &mut session.repair,
                    Some(now.wall.as_secs().saturating_sub(grace)),
                )
            } else {
                (&mut session.need, None)
            };
            let left_before = queue_len(queue);
            let batch = match build_batch(&self.config, queue, expired_before, src) {
                Ok(batch) if !batch.is_empty() => batch,
                Ok(_) if queue_len(queue) < left_before => continue,
                _ => {
                    session.retry_at = Some(now.mono.saturating_add(self.config.retry_delay));
                    return;
                }
            };
            let batch_id = session.next_batch_id;
            session.next_batch_id += 1;
            session.inflight.push_back(Inflight {
                batch_id,
                sent_at: now.mono,
                spans: batch.spans,
            });
            session.stats.records_out += batch.records.len() as u64;
            let msg = Message::Records {
                batch_id,
                records: batch.records,
                cleared: batch.cleared,
            };
            self.send(peer, msg, Lane::Bulk);
        }
    }
}

/// One backlog batch, before it becomes a message.
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    cleared: OriginRanges,
    /// Every seq the batch answers, with a record or as cleared.
    spans: Spans,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.cleared.is_empty()
    }

    fn clear(&mut self, origin: NodeId, range: RangeInclusive<u64>) {
        match self.cleared.last_mut() {
            Some((o, ranges)) if *o == origin => ranges.push(range),
            _ => self.cleared.push((origin, vec![range])),
        }
    }
}

/// Whether an answer keeps the [`RecordSource`] contract for this read.
fn well_formed(got: &[Record], origin: NodeId, range: &RangeInclusive<u64>, max: usize) -> bool {
    got.len() <= max
        && got
            .iter()
            .all(|r| r.id.origin == origin && range.contains(&r.id.seq))
        && got.windows(2).all(|w| w[0].id.seq < w[1].id.seq)
}

/// Seqs left in a queue, saturating.
fn queue_len(queue: &VecDeque<(NodeId, RangeInclusive<u64>)>) -> u64 {
    queue
        .iter()
        .map(|(_, r)| r.end().saturating_sub(*r.start()).saturating_add(1))
        .fold(0, u64::saturating_add)
}

/// Takes the next batch off the front of `need`, reading records from `src`.
/// Seqs `src` does not return are pruned, so they go in `cleared`. Records
/// whose `expires_at` is before `expired_before` are left out (not cleared).
/// Stops at the record or byte budget; what is left stays in `need`.
fn build_batch(
    config: &Config,
    need: &mut VecDeque<(NodeId, RangeInclusive<u64>)>,
    expired_before: Option<u64>,
    src: &(impl RecordSource + ?Sized),
) -> Result<Batch, SourceUnavailable> {
    let mut batch = Batch::default();
    let mut bytes = BATCH_OVERHEAD;
    let mut cleared_ranges = 0usize;
    while let Some((origin, range)) = need.front().cloned() {
        let room = config.max_batch_records - batch.records.len();
        if room == 0 {
            break;
        }
        let read = src
            .read_range(origin, range.clone(), room)
            .ok()
            .filter(|got| well_formed(got, origin, &range, room));
        let Some(got) = read else {
            // Nothing is inferred from a failed or malformed read.
            if batch.is_empty() {
                return Err(SourceUnavailable);
            }
            break;
        };
        let (start, end) = (*range.start(), *range.end());
        let full = got.len() == room;
        // The last seq of this range the batch answers.
        let mut decided: Option<u64> = None;
        let mut stopped = false;
        for record in got {
            let seq = record.id.seq;
            let from = decided.map_or(start, |d| d + 1);
            let gap = seq > from;
            let cost = value_len(&record).saturating_add(if gap { CLEARED_RANGE_BYTES } else { 0 });
            let over_bytes =
                !batch.is_empty() && bytes.saturating_add(cost) > config.max_batch_bytes;
            if over_bytes || (gap && cleared_ranges >= MAX_CLEARED_RANGES) {
                stopped = true;
                break;
            }
            if gap {
                batch.clear(origin, from..=seq - 1);
                cleared_ranges += 1;
            }
            decided = Some(seq);
            if expired_before.is_some_and(|t| record.expires_at < t) {
                continue;
            }
            bytes = bytes.saturating_add(cost);
            batch.records.push(record);
        }
        if !stopped && !full {
            // The source returned everything it holds in the range: the rest
            // was pruned.
            match decided {
                Some(d) if d == end => {}
                _ => {
                    let from = decided.map_or(start, |d| d + 1);
                    let fits = batch.is_empty()
                        || bytes.saturating_add(CLEARED_RANGE_BYTES) <= config.max_batch_bytes;
                    if fits && cleared_ranges < MAX_CLEARED_RANGES {
                        batch.clear(origin, from..=end);
                        cleared_ranges += 1;
                        bytes = bytes.saturating_add(CLEARED_RANGE_BYTES);
                        decided = Some(end);
                    } else {
                        stopped = true;
                    }
                }
            }
        }
        match decided {
            Some(d) if d == end => {
                need.pop_front();
                batch.spans.push((origin, start..=end));
            }
            Some(d) => {
                if let Some(front) = need.front_mut() {
                    front.1 = d + 1..=end;
                }
                batch.spans.push((origin, start..=d));
            }
            None => stopped = true,
        }
        if stopped {
            break;
        }
    }
    Ok(batch)
}

/// Splits records into push messages within the batch limits.
fn chunk(records: &[Record], config: &Config) -> Vec<Vec<Record>> {
    let mut out = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    let mut bytes = BATCH_OVERHEAD;
    for record in records {
        let len = value_len(record);
        let full = current.len() >= config.max_batch_records
            || bytes.saturating_add(len) > config.max_batch_bytes;
        if !current.is_empty() && full {
            out.push(std::mem::take(&mut current));
            bytes = BATCH_OVERHEAD;
        }
        bytes = bytes.saturating_add(len);
        current.push(record.clone());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The seq ranges a set of records occupies.
pub(crate) fn spans_of(records: &[Record]) -> Spans {
    let mut covered = Frontier::new();
    for r in records {
        covered.insert(r.id);
    }
    covered
        .origins()
        .flat_map(|(origin, seqs)| seqs.ranges().map(move |r| (origin, r)).collect::<Vec<_>>())
        .collect()
}
