//! veto-store: the durable state of one veto node, in a sled data directory.
//!
//! It keeps every stored revocation record, two secondary indexes (by HLC stamp
//! for the audit trail, by expiry for garbage collection), the covered frontier
//! and set digest beside them, the peer list, and the node's permanent id. Writes
//! are atomic across all of these and flushed before they return: a record
//! acknowledged by [`Store::append`] survives a crash (`kill -9` is tested), and a
//! crash mid-write leaves nothing of that write behind.
//!
//! # Layout
//!
//! | tree        | key                                  | value                         |
//! |-------------|--------------------------------------|-------------------------------|
//! | `records`   | origin BE, `seq >> 6` BE             | a chunk: up to 64 records     |
//! | `by_hlc`    | newest stamp BE, chunk key           | oldest stamp BE               |
//! | `by_expiry` | earliest `expires_at` BE, chunk key  | empty                         |
//! | `meta`      | `format`, `node_id`, `frontier`, `digest`, `pruned_log_epoch`, `setting/<name>` | |
//! | `peers`     | address                              | [`PeerEntry`]                 |
//! | `pruned_log`| origin BE, seq BE                    | a pruned record, kept until the next index checkpoint is in place |
//!
//! Records are grouped into chunks of 64 consecutive seqs of one origin because
//! sled's cost is per key: one key per record plus two index entries held ingest
//! to about 15,000 records/s, while chunks take a batch of 10,000 in about 160
//! keys. Each record inside a chunk is encoded with bincode 2 (size-limited on
//! decode); see the `chunk` module for the framing. Secondary indexes name chunks,
//! not records, and move with them in the same transaction.
//!
//! `index.checkpoint`, beside sled's files, holds the lookup index's keys for
//! a fast restart; see the `checkpoint` module.
//!
//! The API is synchronous and blocking; async callers use `spawn_blocking`.
//! The store is the node's [`veto_node::Storage`] and the replication engine's
//! record source. This crate depends on veto-core, the sans-IO veto-node and
//! veto-gossip (for those two traits) and sled: it must never depend on tokio,
//! the network, the transport or the HTTP crates.

mod audit_index;
mod checkpoint;
mod chunk;
mod codec;
mod error;
mod marker;
mod open;
mod peers;
mod read;
mod storage;
mod store;
mod verify;
mod write;

pub use audit_index::{AuditIndex, IndexWithPeers};
pub use checkpoint::{Checkpoint, CheckpointError, CheckpointStats, CHECKPOINT_FILE};
pub use error::{OpenError, StoreError};
pub use peers::{PeerEntry, MAX_PEER_FIELD_BYTES};
pub use store::{Damage, OpenOptions, Store};
pub use verify::VerifyReport;
