//! The write path between the engines and the disks: persist requests
//! queued on a node's disk and completed (or failed, halting the node's
//! writes), local revocations made durable and acknowledged, and the index
//! kept in step with what is stored.

use rand::Rng;
use veto_core::{Frontier, Record, RecordId};
use veto_gossip::engine::PersistId;

use crate::params::Bug;
use crate::sched::{Event, Time};
use crate::world::World;

impl World {
    pub(crate) fn persist(
        &mut self,
        i: usize,
        id: PersistId,
        records: Vec<Record>,
        cover: Frontier,
        restore: Vec<Record>,
    ) {
        let now = self.now;
        let local_secs = self.nodes[i].local_secs(now);
        self.max_clock_secs = self.max_clock_secs.max(local_secs);
        self.oracle
            .persist_request(now, i, &records, &cover, &self.nodes[i].store);
        self.oracle
            .restore_request(now, i, &restore, &self.nodes[i].store);
        self.trace
            .word(0x9e ^ (records.len() as u64) << 8 ^ cover.count() << 32);
        let done = self.queue_disk_write(i, now);
        let fail = self.disk_failing && self.disk_rng.gen_bool(self.p.disk.fail_prob);
        let incarnation = self.nodes[i].incarnation;
        self.q.push(
            done,
            Event::PersistDone {
                node: i,
                incarnation,
                id,
                records,
                cover,
                restore,
                fail,
            },
        );
    }

    /// Queues a write on node `i`'s disk at `now`, with a latency drawn from
    /// the disk's range; returns when it is done.
    pub(crate) fn queue_disk_write(&mut self, i: usize, now: Time) -> Time {
        let d = &self.p.disk;
        let latency = self.disk_rng.gen_range(d.min_us..=d.max_us.max(d.min_us));
        self.nodes[i].disk_write(now, latency)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_persisted(
        &mut self,
        i: usize,
        incarnation: u64,
        id: PersistId,
        records: Vec<Record>,
        cover: Frontier,
        restore: Vec<Record>,
        fail: bool,
    ) {
        let now = self.now;
        if self.nodes[i].incarnation != incarnation || self.nodes[i].live.is_none() {
            // The write was still on its way when the node crashed.
            return;
        }
        if fail || self.nodes[i].writes_fail() {
            // As in production, a failed write halts writes until the disk
            // works again; the engine forgets the records, so a later copy
            // from any peer is taken in again.
            self.metrics.persist_failures += 1;
            self.halt(i);
            self.with_engine(i, |e, local, _, _| e.persist_failed(local, id));
            return;
        }
        let local_secs = self.nodes[i].local_secs(now);
        let grace = self.p.engine.gc_grace_s;
        let drop_expired = self.p.bug == Some(Bug::DropExpiredOnReceipt);
        let node = &mut self.nodes[i];
        let mut stored = Vec::new();
        let mut dropped = Vec::new();
        for r in &records {
            if drop_expired
                && r.expires_at.saturating_add(grace) < local_secs
                && !node.store.covers(r.id)
            {
                // The bug, as the old engine did: expired by this node's
                // clock, so covered without its data.
                let mut one = Frontier::new();
                one.insert(r.id);
                node.store.cover(&one);
                dropped.push(r.id);
                continue;
            }
            if node.store.insert(now, r.clone()) {
                stored.push(r);
            }
        }
        node.store.cover(&cover);
        if self.p.bug != Some(Bug::NoRestore) {
            for r in &restore {
                if node.store.restore(now, r.clone()) {
                    stored.push(r);
                    self.metrics.restored_stored += 1;
                }
            }
        }
        node.store.commit();
        for id in dropped {
            self.oracle.covered_without_data(now, i, id);
        }
        self.with_engine(i, |e, local, _, _| e.records_durable(local, id));
        for r in stored {
            self.index_insert(i, r);
            self.oracle.stored(i, r.id);
            if let (Some(k), Some(&origin)) =
                (self.oracle.records.get(&r.id), self.by_id.get(&r.id.origin))
            {
                let base = self.net.one_way(origin, i);
                self.metrics.latency.push((now - k.created_at, base));
            }
        }
        self.oracle.durable(now, i, &records, &self.nodes[i].store);
        self.catch_up_check(i);
        self.check_converged();
    }

    pub(crate) fn index_insert(&mut self, i: usize, r: &Record) {
        let Some(live) = self.nodes[i].live.as_mut() else {
            return;
        };
        if let Err(e) = live.index.insert_record(r) {
            live.index_errors += 1;
            let detail = format!("the lookup index refused the record: {e}");
            self.oracle
                .violate(self.now, "index-refused", Some(i), Some(r.id), detail);
        }
    }

    pub(crate) fn on_local_durable(&mut self, i: usize, incarnation: u64, records: Vec<Record>) {
        let now = self.now;
        if self.nodes[i].incarnation != incarnation || self.nodes[i].live.is_none() {
            return;
        }
        let done: std::collections::BTreeSet<RecordId> = records.iter().map(|r| r.id).collect();
        if let Some(live) = self.nodes[i].live.as_mut() {
            live.pending.retain(|p| !done.contains(p));
        }
        if self.nodes[i].writes_fail() {
            // The write failed: the client is answered 503 and nothing of it
            // is acknowledged (nor reached the disk).
            let ids: Vec<RecordId> = done.into_iter().collect();
            self.oracle.lost_unacked(&ids);
            self.metrics.revocations_refused += ids.len() as u64;
            self.halt(i);
            return;
        }
        for r in &records {
            self.nodes[i].store.insert(now, r.clone());
        }
        if let Some(stamp) = records.iter().map(|r| r.hlc).max() {
            self.nodes[i].store.note_local_stamp(stamp);
        }
        self.nodes[i].store.commit();
        for r in &records {
            self.index_insert(i, r);
            self.oracle.stored(i, r.id);
            self.oracle.acked(now, r.id);
            self.metrics.acked += 1;
        }
        self.trace.word(0x1d ^ (records.len() as u64) << 8);
        self.with_engine(i, |e, local, _, _| e.local_records(local, &records));
        self.check_converged();
    }

    fn catch_up_check(&mut self, i: usize) {
        let now = self.now;
        let store = &self.nodes[i].store;
        for c in self
            .catch_up
            .iter_mut()
            .filter(|c| c.node == i && c.done_at.is_none())
        {
            if store.covered_count() >= c.target_count
                && c.target.missing_in(store.covered()).is_empty()
            {
                c.done_at = Some(now);
            }
        }
    }
}
