//! The simulated store as veto-node's [`Storage`]: the node's shared write
//! path (`veto_node::durable`) runs over it exactly as it runs over sled.
//! What a write completes is committed by the caller ([`Store::commit`]),
//! when the simulated disk reports it done.

use std::convert::Infallible;

use veto_core::{Frontier, Record, RecordId};
use veto_node::Storage;

use crate::params::Bug;
use crate::sched::Time;
use crate::store::Store;

/// One write to a node's store at simulated time `now`.
pub(crate) struct Disk<'a> {
    pub(crate) store: &'a mut Store,
    pub(crate) now: Time,
    /// The node's clock, Unix seconds, and the GC grace: for the bug that
    /// covers expired records without their data.
    pub(crate) local_secs: u64,
    pub(crate) grace_secs: u64,
    pub(crate) bug: Option<Bug>,
    /// Ids the `drop-expired-on-receipt` bug covered without data.
    pub(crate) dropped: Vec<RecordId>,
    /// How many records were stored again under ids covered without data.
    pub(crate) restored: u64,
}

impl<'a> Disk<'a> {
    pub(crate) fn new(store: &'a mut Store, now: Time, bug: Option<Bug>) -> Disk<'a> {
        Disk {
            store,
            now,
            local_secs: 0,
            grace_secs: 0,
            bug,
            dropped: Vec::new(),
            restored: 0,
        }
    }
}

impl Storage for Disk<'_> {
    /// The simulated disk's failures are decided before the write is made
    /// (the write is then not made at all), so a write that runs succeeds.
    type Error = Infallible;

    fn append(&mut self, records: &[Record]) -> Result<Vec<Record>, Infallible> {
        let mut stored = Vec::new();
        for r in records {
            if self.bug == Some(Bug::DropExpiredOnReceipt)
                && r.expires_at.saturating_add(self.grace_secs) < self.local_secs
                && !self.store.covers(r.id)
            {
                // The bug, as the old engine did: expired by this node's
                // clock, so covered without its data.
                let mut one = Frontier::new();
                one.insert(r.id);
                self.store.cover(&one);
                self.dropped.push(r.id);
                continue;
            }
            if self.store.insert(self.now, r.clone()) {
                stored.push(r.clone());
            }
        }
        Ok(stored)
    }

    fn append_local(&mut self, records: &[Record]) -> Result<Vec<Record>, Infallible> {
        let stored: Vec<Record> = records
            .iter()
            .filter(|r| self.store.insert(self.now, (*r).clone()))
            .cloned()
            .collect();
        if let Some(stamp) = records.iter().map(|r| r.hlc).max() {
            self.store.note_local_stamp(stamp);
        }
        Ok(stored)
    }

    fn cover(&mut self, frontier: &Frontier) -> Result<(), Infallible> {
        self.store.cover(frontier);
        Ok(())
    }

    fn restore(&mut self, records: &[Record]) -> Result<Vec<Record>, Infallible> {
        if self.bug == Some(Bug::NoRestore) {
            return Ok(Vec::new());
        }
        let stored: Vec<Record> = records
            .iter()
            .filter(|r| self.store.restore(self.now, (*r).clone()))
            .cloned()
            .collect();
        self.restored += stored.len() as u64;
        Ok(stored)
    }

    fn expired(
        &self,
        now_secs: u64,
        grace_secs: u64,
        limit: usize,
    ) -> Result<Vec<Record>, Infallible> {
        Ok(self.store.expired(now_secs, grace_secs, limit))
    }

    fn prune(&mut self, ids: &[RecordId]) -> Result<usize, Infallible> {
        Ok(self.store.prune(ids))
    }
}
