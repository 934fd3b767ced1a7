//! veto-core: the data model of veto, a multi-region token-revocation system.
//!
//! It holds what a revocation is ([`Record`], [`Target`]), how a lookup matches
//! ([`Check`]), the in-memory [`LookupIndex`] that answers lookups with a few hash
//! probes, the replicated add-only [`RevocationSet`] (a CRDT), per-origin
//! [`Frontier`]s for anti-entropy, the order-independent [`SetDigest`], JWT claim
//! decoding, the hybrid logical clock wrapper, and the API's request types
//! with the rules that turn them into revocations ([`request`]) and the record's
//! JSON form ([`view`]), shared by the node, its HTTP API and its client.
//!
//! This crate is pure: it must never depend on tokio, sled, quinn or anything
//! that does I/O, and it never reads the OS clock. Time is always passed in.

pub mod actor;
pub mod audit;
pub mod check;
pub mod digest;
pub mod frontier;
pub mod hlc;
pub mod id;
pub mod index;
pub mod jwt;
pub mod receipt;
pub mod record;
pub mod request;
pub mod set;
pub mod status;
pub mod view;

pub use audit::AuditQuery;
pub use check::{Check, Claims, Hit};
pub use digest::SetDigest;
pub use frontier::{Frontier, SeqSet};
pub use hlc::{ClockAhead, Hlc, HybridClock};
pub use id::{NodeId, RecordId};
pub use index::{BulkLoad, IndexKey, IndexMap, LookupIndex};
pub use record::{Record, Revocation, ScopeKind, Target};
pub use set::{Inserted, RevocationSet, SetOp};
