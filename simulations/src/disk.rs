//! Faults of a node's storage, applied to the world: backups restored, data
//! directories cloned, logs cut short, data lost under covered ids, disks that
//! fail and come back. And the node's side of a failed write, as production
//! does it: writes halt (local revocations are refused, peer records are not
//! acknowledged), a check every two seconds resumes them once the disk works.

use rand::Rng;
use veto_core::{Frontier, RecordId};

use crate::bound::RECOVERY_MS;
use crate::params::Bug;
use crate::sched::{Event, MS};
use crate::world::{CatchUp, World};

impl World {
    /// Whether node `i` has never run (it waits for a `Start`, a
    /// `StartClone` or the heal).
    fn never_started(&self, i: usize) -> bool {
        self.nodes[i].incarnation == 0 && self.nodes[i].live.is_none()
    }

    /// Node `i` failed a write: its writes halt until a recovery check finds
    /// the disk working.
    pub(crate) fn halt(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if !node.halted {
            node.halted = true;
            self.metrics.halts += 1;
            if self.log {
                self.say(i, "halts writes after a failed write");
            }
        }
        let node = &mut self.nodes[i];
        if !node.recovery_pending {
            node.recovery_pending = true;
            let incarnation = node.incarnation;
            let wait = self.disk_rng.gen_range(1..=RECOVERY_MS) * MS;
            self.q.push(
                self.now + wait,
                Event::Recover {
                    node: i,
                    incarnation,
                },
            );
        }
    }

    /// Node `i`'s recovery check: if the disk works again, writes resume.
    pub(crate) fn on_recover(&mut self, i: usize, incarnation: u64) {
        let now = self.now;
        let node = &mut self.nodes[i];
        if node.incarnation != incarnation || node.live.is_none() {
            return;
        }
        node.recovery_pending = false;
        if !node.halted || self.p.bug == Some(Bug::HaltForever) {
            return;
        }
        if node.disk_down {
            node.recovery_pending = true;
            self.q.push(
                now + RECOVERY_MS * MS,
                Event::Recover {
                    node: i,
                    incarnation,
                },
            );
            return;
        }
        // Production reopens the store, rebuilds its index from what is on
        // disk and numbers on past the highest seq there, replicating what of
        // the failed write landed. Nothing of a failed write reaches this
        // disk, so the index already matches the store and nothing landed.
        node.halted = false;
        let on_disk = node.store.covered().max_seq(node.id);
        if let Some(seqs) = node.live.as_mut().and_then(|l| l.writer.recover(on_disk)) {
            let detail =
                format!("seqs {seqs:?} of a failed write reached a disk that takes nothing of one");
            self.oracle
                .violate(now, "landed-failed-write", Some(i), None, detail);
        }
        self.metrics.recoveries += 1;
        self.trace.word(0x4e ^ (i as u64) << 8);
        if self.log {
            self.say(i, "resumes writes");
        }
        self.check_converged();
    }

    /// Keeps a copy of node `i`'s durable store as snapshot `id`.
    pub(crate) fn snapshot(&mut self, i: usize, id: u32) {
        let image = self.nodes[i].store.image();
        self.snapshots.insert(id, (i, image));
    }

    /// Node `i` crashes, its store is replaced by snapshot `id`, and it
    /// starts again. The restored store is consistent with its own marker:
    /// what it lacks is fetched again, not reported.
    pub(crate) fn restore_snapshot(&mut self, i: usize, id: u32) {
        let Some((of, image)) = self.snapshots.get(&id) else {
            return;
        };
        if *of != i || self.never_started(i) {
            return;
        }
        let image = image.clone();
        self.crash_node(i);
        self.nodes[i].store.install(image);
        self.oracle.replaced(i, &self.nodes[i].store);
        self.oracle.expect_no_report(i);
        self.metrics.disk_faults += 1;
        self.metrics.restarts += 1;
        self.start_node(i);
    }

    /// Node `i`, never started, starts with a copy of node `from`'s durable
    /// store. It takes a writer id of its own (with the `reuse-seqs` bug it
    /// keeps the copied directory's id and numbers on from its log).
    pub(crate) fn start_clone(&mut self, i: usize, from: usize) {
        if i == from || from >= self.nodes.len() || !self.never_started(i) {
            return;
        }
        let image = self.nodes[from].store.image();
        self.nodes[i].store.install(image);
        self.oracle.replaced(i, &self.nodes[i].store);
        self.metrics.disk_faults += 1;
        self.push_catch_up(i);
        let id = if self.p.bug == Some(Bug::ReuseSeqs) {
            self.nodes[from].id
        } else {
            self.fresh_writer(i)
        };
        self.launch(i, id);
    }

    /// Node `i` crashes, its log loses its last `writes` writes, and it starts
    /// again if it was running. It must report the loss at its next start.
    pub(crate) fn truncate_tail(&mut self, i: usize, writes: usize) {
        if self.never_started(i) {
            return;
        }
        let was_live = self.nodes[i].live.is_some();
        self.crash_node(i);
        let before = self.nodes[i].store.covered().clone();
        let cut = self.nodes[i].store.truncate(writes);
        let lost = before.missing_in(self.nodes[i].store.covered());
        let example = lost.first().and_then(|(origin, ranges)| {
            ranges.first().map(|r| RecordId {
                origin: *origin,
                seq: *r.start(),
            })
        });
        self.oracle.replaced(i, &self.nodes[i].store);
        self.oracle.expect_report(i, cut.uncovered, example);
        self.trace.word(0x7c ^ cut.uncovered << 8);
        if self.log {
            let what = format!(
                "loses its last {} writes: {} covered ids",
                cut.writes, cut.uncovered
            );
            self.say(i, &what);
        }
        self.metrics.disk_faults += 1;
        if was_live {
            self.metrics.restarts += 1;
            self.start_node(i);
        }
    }

    /// Node `i` crashes, `count` of its records lose their data (their ids
    /// stay covered), and it starts again if it was running.
    pub(crate) fn lose_data(&mut self, i: usize, count: usize) {
        if self.never_started(i) {
            return;
        }
        let was_live = self.nodes[i].live.is_some();
        self.crash_node(i);
        let lost = self.nodes[i].store.lose_data(count, &mut self.disk_rng);
        self.oracle.replaced(i, &self.nodes[i].store);
        self.trace.word(0x1a ^ (lost.len() as u64) << 8);
        if self.log {
            self.say(i, &format!("loses the data of {} records", lost.len()));
        }
        self.metrics.disk_faults += 1;
        if was_live {
            self.metrics.restarts += 1;
            self.start_node(i);
        }
    }

    /// A node that joins: how long it takes to cover every acknowledged
    /// record is reported.
    pub(crate) fn push_catch_up(&mut self, i: usize) {
        let mut target = Frontier::new();
        for (id, k) in &self.oracle.records {
            if k.acked_at.is_some() {
                target.insert(*id);
            }
        }
        self.catch_up.push(CatchUp {
            node: i,
            started_at: self.now,
            target_count: target.count(),
            target,
            done_at: None,
        });
    }
}
