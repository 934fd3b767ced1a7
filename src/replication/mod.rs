//! Replication at the edge: the sans-IO engine from veto-gossip driven by a
//! tokio task, with the QUIC transport for messages and the store for records.
//!
//! The driver owns the engine. Every input (a transport event, a local revoke, a
//! peer-list change, a finished write, a timer) goes into the engine with the
//! wall clock's `now`; every output is carried out here: frames go to the
//! transport, records to the store (on the blocking pool, reported back when
//! durable), events to logs and metrics.

mod driver;
mod status;

pub(crate) use driver::{start, ReplicationSettings};
