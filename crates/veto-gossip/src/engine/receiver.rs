//! The receiving side: taking records in, asking the driver to persist each
//! one once, and acknowledging batches only once they are durable.

use super::now::Now;
use std::collections::BTreeSet;

use veto_core::{Frontier, Record, RecordId, SeqSet};

use super::config::MAX_UNACKED_IN;
use super::session::seqs_in;
use super::{
    ClockVerdict, Engine, EngineEvent, Lane, Output, PeerKey, PersistId, RecordSource, Via,
};
use crate::proto::{Message, OriginRanges};

/// One [`Output::Persist`] request the driver has not yet answered.
pub(crate) struct Ticket {
    /// Records it persists or covers; each maps to this ticket in
    /// `Engine::persisting` while it waits.
    ids: Vec<RecordId>,
    cover: Frontier,
    /// Received batches whose ack waits (also) on this ticket.
    waiters: Vec<(PeerKey, u64)>,
}

/// Records as they came from a peer, and how.
struct Received {
    records: Vec<Record>,
    /// Seqs the sender covers but pruned (backlog batches only).
    cleared: OriginRanges,
    /// The backlog batch's id, to acknowledge once durable; none for a push.
    batch: Option<u64>,
    via: Via,
}

impl Engine {
    /// Takes in the records of a push, or of a copy of one (`via`).
    pub(super) fn on_push(
        &mut self,
        now: Now,
        peer: PeerKey,
        records: Vec<Record>,
        via: Via,
        src: &(impl RecordSource + ?Sized),
    ) {
        let received = Received {
            records,
            cleared: Vec::new(),
            batch: None,
            via,
        };
        self.take_records(now, peer, received, src);
    }

    /// Takes in the records of a backlog batch.
    pub(super) fn on_records(
        &mut self,
        now: Now,
        peer: PeerKey,
        records: Vec<Record>,
        cleared: OriginRanges,
        batch: u64,
        src: &(impl RecordSource + ?Sized),
    ) {
        let received = Received {
            records,
            cleared,
            batch: Some(batch),
            via: Via::Repair,
        };
        self.take_records(now, peer, received, src);
    }

    /// Takes in received records: of a push (`batch: None`) or of a backlog
    /// batch.
    fn take_records(
        &mut self,
        now: Now,
        peer: PeerKey,
        received: Received,
        src: &(impl RecordSource + ?Sized),
    ) {
        let Received {
            records,
            cleared,
            batch,
            via,
        } = received;
        if let Some(batch_id) = batch {
            let Some(session) = self.sessions.get_mut(&peer) else {
                return;
            };
            if session.unacked_in >= MAX_UNACKED_IN {
                let reason = format!(
                    "more than {MAX_UNACKED_IN} batches awaiting acknowledgement: \
                     the peer ignores backpressure"
                );
                return self.violation(peer, reason);
            }
            if self.pending_acks.contains_key(&(peer, batch_id)) {
                return self.violation(peer, format!("batch id {batch_id} reused"));
            }
            session.unacked_in += 1;
        }

        let ticket = self.next_ticket;
        // Tickets that must be durable before the batch can be acked.
        let mut waits = BTreeSet::new();
        let mut fresh = Vec::new();
        let mut restore = Vec::new();
        let mut ids = Vec::new();
        let mut cover = Frontier::new();
        let mut covers_any = false;
        let (mut duplicates, mut expired, mut conflicts) = (0usize, 0usize, 0usize);
        let total = records.len();
        let now_secs = now.wall.as_secs();
        let grace = self.config.gc_grace.as_secs();
        // A skewed clock cannot say what has expired: take every record back.
        let clock_trusted = self.clock_check().verdict != ClockVerdict::Skewed;
        for record in records {
            let id = record.id;
            if self.durable.contains(id) && !self.persisting.contains_key(&id) {
                match src.get(id) {
                    Ok(Some(stored)) if stored == record => duplicates += 1,
                    Ok(Some(_)) => {
                        conflicts += 1;
                        self.event(EngineEvent::Conflict { peer, record: id });
                    }
                    Ok(None)
                        if !clock_trusted
                            || record.expires_at.saturating_add(grace) >= now_secs =>
                    {
                        // Covered here without data, yet still live: this
                        // node lost it (or dropped it by a wrong clock).
                        self.persisting.insert(id, ticket);
                        ids.push(id);
                        restore.push(record);
                    }
                    // Pruned here after expiry, or unreadable just now.
                    Ok(None) | Err(_) => duplicates += 1,
                }
                continue;
            }
            if let Some(other) = self.persisting.get(&id) {
                duplicates += 1;
                if *other != ticket {
                    waits.insert(*other);
                }
                continue;
            }
            self.persisting.insert(id, ticket);
            ids.push(id);
            if let Err(ahead) = self.clock.observe(now.wall, id.origin, record.hlc) {
                self.stats.clock_ahead += 1;
                self.event(EngineEvent::ClockAhead {
                    peer,
                    record: id,
                    ahead: ahead.ahead,
                    limit: ahead.limit,
                });
            }
            if record.expires_at.saturating_add(grace) < now_secs {
                // Stored all the same: this node's clock alone must never
                // make a record vanish. Garbage collection takes it once the
                // clock is known to agree with the cluster's.
                expired += 1;
            }
            self.event(EngineEvent::PropagationLatency {
                origin: id.origin,
                latency: now.wall.saturating_sub(record.hlc.as_unix()),
                via,
            });
            fresh.push(record);
        }

        let mut cleared_seqs = 0u64;
        for (origin, ranges) in &cleared {
            for range in ranges {
                let lacking = match self.durable.origin(*origin) {
                    Some(have) => SeqSet::from_ranges([range.clone()]).difference(have),
                    None => vec![range.clone()],
                };
                for r in lacking {
                    cleared_seqs = cleared_seqs.saturating_add(seqs_in(&r));
                    cover.insert_range(*origin, r);
                    covers_any = true;
                }
            }
        }

        if batch.is_none() {
            self.relay(now, peer, &fresh);
        }
        let new = fresh.len();
        let restored = restore.len();
        let persisting = !ids.is_empty() || covers_any;
        if persisting {
            self.next_ticket += 1;
            self.tickets.insert(
                ticket,
                Ticket {
                    ids,
                    cover: cover.clone(),
                    waiters: Vec::new(),
                },
            );
            self.outputs.push_back(Output::Persist {
                id: PersistId(ticket),
                records: fresh,
                cover,
                restore,
            });
            waits.insert(ticket);
        }

        self.stats.records_new += new as u64;
        self.stats.duplicates += duplicates as u64;
        self.stats.expired_on_receipt += expired as u64;
        self.stats.conflicts += conflicts as u64;
        self.stats.restored += restored as u64;
        self.stats.cleared = self.stats.cleared.saturating_add(cleared_seqs);
        if let Some(session) = self.sessions.get_mut(&peer) {
            if total > 0 || !cleared.is_empty() {
                session.delivered_at = now.mono;
            }
            session.stats.records_in += total as u64;
            session.stats.duplicates_in += duplicates as u64;
        }
        if total > 0 || cleared_seqs > 0 {
            self.event(EngineEvent::Received {
                peer,
                via,
                new,
                duplicates,
                expired,
                cleared: cleared_seqs,
                restored,
                conflicts,
            });
        }

        if let Some(batch_id) = batch {
            if waits.is_empty() {
                self.send_ack(peer, batch_id);
            } else {
                self.pending_acks.insert((peer, batch_id), waits.len());
                for t in waits {
                    if let Some(waiting) = self.tickets.get_mut(&t) {
                        waiting.waiters.push((peer, batch_id));
                    }
                }
            }
        }
        if persisting && self.config.report_before_durable {
            if let Some(t) = self.tickets.get(&ticket) {
                self.report_due.extend(t.ids.iter().map(|id| id.origin));
            }
            self.own_report_stale = true;
        }
        if persisting && self.config.advertise_before_durable {
            // The deliberate bug: held before the driver made it durable.
            self.records_durable(now, PersistId(ticket));
        }
    }

    /// The driver made [`Output::Persist`] `id` durable: its records now count
    /// in the advertised frontier, and batches waiting only on it are acked.
    pub fn records_durable(&mut self, _now: Now, id: PersistId) {
        let Some(ticket) = self.tickets.remove(&id.0) else {
            return;
        };
        for rid in &ticket.ids {
            if self.persisting.get(rid) == Some(&id.0) {
                self.persisting.remove(rid);
            }
            self.durable.insert(*rid);
        }
        self.durable.union_with(&ticket.cover);
        self.report_due
            .extend(ticket.ids.iter().map(|id| id.origin));
        self.own_report_stale = true;
        for (peer, batch_id) in ticket.waiters {
            let key = (peer, batch_id);
            let Some(left) = self.pending_acks.get_mut(&key) else {
                continue;
            };
            *left -= 1;
            if *left == 0 {
                self.pending_acks.remove(&key);
                self.send_ack(peer, batch_id);
            }
        }
    }

    /// The driver could not persist [`Output::Persist`] `id`. Its records are
    /// forgotten, so a later copy from any peer is taken in again. The batches
    /// that waited on it are acknowledged all the same, which frees the
    /// senders' windows at once: an ack only says the batch was dealt with,
    /// and this node's next frontier still lacks the records, so the senders
    /// send them again (rather than after their ack timeout).
    pub fn persist_failed(&mut self, _now: Now, id: PersistId) {
        let Some(ticket) = self.tickets.remove(&id.0) else {
            return;
        };
        self.stats.persist_failures += 1;
        for rid in &ticket.ids {
            if self.persisting.get(rid) == Some(&id.0) {
                self.persisting.remove(rid);
            }
        }
        for (peer, batch_id) in ticket.waiters {
            if self.pending_acks.remove(&(peer, batch_id)).is_some() {
                self.send_ack(peer, batch_id);
            }
        }
    }

    fn send_ack(&mut self, peer: PeerKey, batch_id: u64) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.unacked_in = session.unacked_in.saturating_sub(1);
        self.send(peer, Message::Ack { batch_id }, Lane::Urgent);
    }
}
