//! The write path between the engines and the disks: persist requests
//! queued on a node's disk and completed (or failed, halting the node's
//! writes), local revocations made durable and acknowledged, and the index
//! kept in step with what is stored.

use rand::Rng;
use veto_core::{Frontier, Record, RecordId};
use veto_gossip::engine::{Input, PersistId};
use veto_node::Ack;

use crate::sched::{Event, Time};
use crate::storage::Disk;
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
            self.input(i, Input::Persisted { id, durable: false });
            return;
        }
        let local_secs = self.nodes[i].local_secs(now);
        let node = &mut self.nodes[i];
        let mut disk = Disk::new(&mut node.store, now, self.p.bug);
        disk.local_secs = local_secs;
        disk.grace_secs = self.p.engine.gc_grace_s;
        // Production's write path, over the simulated store.
        let Ok(stored) = veto_node::store_from_peer(&mut disk, &records, &cover, &restore);
        let (dropped, restored) = (std::mem::take(&mut disk.dropped), disk.restored);
        node.store.commit();
        self.metrics.restored_stored += restored;
        for id in dropped {
            self.oracle.covered_without_data(now, i, id);
        }
        self.input(i, Input::Persisted { id, durable: true });
        self.enforce(i, &stored);
        for r in &stored {
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

    /// Node `i` enforces `records`, which just became durable.
    pub(crate) fn enforce(&mut self, i: usize, records: &[Record]) {
        let Some(live) = self.nodes[i].live.as_mut() else {
            return;
        };
        for (id, e) in live.enforcer.enforce(records) {
            live.index_errors += 1;
            let detail = format!("the lookup index refused the record: {e}");
            self.oracle
                .violate(self.now, "index-refused", Some(i), Some(id), detail);
        }
    }

    /// A local write failed: production holds its writer across the write,
    /// so the failed seqs are the next ones it hands out, and an origin's
    /// log never has a gap. Here writes overlap (their seqs are taken at
    /// once), so the writer goes back to the first failed seq; the writes
    /// still in flight behind it fail too, as the node has halted.
    fn rewind_writer(&mut self, i: usize, failed: &[RecordId]) {
        let Some(live) = self.nodes[i].live.as_mut() else {
            return;
        };
        let id = live.writer.id();
        let first = failed
            .iter()
            .filter(|r| r.origin == id)
            .map(|r| r.seq)
            .min();
        if let Some(first) = first.filter(|f| *f < live.writer.next_seq()) {
            live.writer = veto_node::Writer::resume(id, first);
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
            self.rewind_writer(i, &ids);
            self.halt(i);
            return;
        }
        let node = &mut self.nodes[i];
        let early = node.live.as_ref().map(|l| l.faults.ack()) == Some(Ack::BeforeDurable);
        let stored =
            veto_node::store_local(&mut Disk::new(&mut node.store, now, self.p.bug), &records);
        node.store.commit();
        if let Err(e) = stored {
            // Production answers 503: nothing of the write is acknowledged.
            let ids: Vec<RecordId> = records.iter().map(|r| r.id).collect();
            self.oracle.lost_unacked(&ids);
            self.metrics.revocations_refused += ids.len() as u64;
            self.rewind_writer(i, &ids);
            if self.log {
                self.say(i, &format!("refuses a local write: {e}"));
            }
            return;
        }
        self.enforce(i, &records);
        let local = self.nodes[i].ack_time(now);
        for r in &records {
            self.oracle.stored(i, r.id);
            if !early {
                self.oracle.acked(now, local, r.id);
                self.metrics.acked += 1;
            }
        }
        self.trace.word(0x1d ^ (records.len() as u64) << 8);
        self.input(i, Input::LocalRecords(&records));
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
