//! veto-node: what a veto node decides, with no I/O, shared by the `veto`
//! binary and the simulator so that the simulator's seeds vouch for the
//! production logic itself.
//!
//! - [`writer`]: the writer identity of a process lifetime, and the numbering
//!   and stamping of local revocations.
//! - [`storage`]: the storage trait the node writes through (sled in
//!   production, memory with a crash model in the simulator).
//! - [`durable`]: the write path's order: stored before acknowledged,
//!   indexed or advertised; garbage collection's prune.
//! - [`enforce`]: the lookup index, kept in step with what is durable, and
//!   [`details`], what its hits report, so that a hit reads no record.
//! - [`gc`]: whether this node's clock may decide what has expired.
//! - [`cutoffs`]: now for bulk cutoffs, and when this node may not set them.
//! - [`membership`]: who may be a peer: certificates revoked by `peer`
//!   records and names removed by the operator are refused whichever side
//!   dials, and the peer list is an allow-list on both dial and accept.
//! - [`receipts`]: receipts and freshness watermarks, from the cluster's
//!   reports of who holds what.
//! - [`faults`]: deliberate bugs in that code, to prove the checks find them.
//!
//! The engine runs the same loop in every driver: inputs through
//! `veto_gossip::engine::Engine::handle`, outputs through
//! `veto_gossip::engine::drain` onto the driver's `Runtime`.
//!
//! This crate must never depend on tokio, sled, quinn, rustls or anything that
//! does I/O, and it never reads a clock or draws randomness of its own: time
//! and random sources are passed in. CI checks its dependency tree.

pub mod cutoffs;
pub mod details;
pub mod durable;
pub mod enforce;
pub mod faults;
pub mod gc;
pub mod membership;
pub mod receipts;
pub mod storage;
pub mod writer;

pub use cutoffs::{cutoff_now, may_set_cutoffs, BulkRefused};
pub use durable::{collect_expired, store_from_peer, store_local, LocalWriteError};
pub use enforce::Enforcer;
pub use faults::{Ack, Fault, Faults};
pub use gc::{may_collect, GcHold};
pub use membership::{Membership, PeerCert, Refusal, RevokedPeers, Side};
pub use receipts::Holdings;
pub use storage::Storage;
pub use writer::{begin_life, fresh_writer, Life, Writer};
