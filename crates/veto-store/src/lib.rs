//! veto-store: the durable state of one veto node, in a sled data directory.
//!
//! It keeps every stored revocation record (keyed by origin and sequence number),
//! two secondary indexes (by HLC stamp for the audit trail, by expiry for garbage
//! collection), the covered frontier and set digest beside them, the peer list,
//! and the node's permanent id. Writes are atomic across all of these and flushed
//! before they return: a record acknowledged by [`Store::append`] survives a
//! crash, and a crash mid-write leaves nothing of that write behind.
//!
//! The API is synchronous and blocking; async callers use `spawn_blocking`.
//! This crate depends on veto-core and sled only: it must never depend on tokio,
//! the network, or the HTTP and gossip crates.

mod chunk;
mod codec;
mod error;
mod peers;
mod read;
mod store;
mod verify;
mod write;

pub use error::{OpenError, StoreError};
pub use peers::{PeerEntry, MAX_PEER_FIELD_BYTES};
pub use store::{OpenOptions, Store};
pub use verify::VerifyReport;
