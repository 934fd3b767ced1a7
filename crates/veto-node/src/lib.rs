//! veto-node: what a veto node decides, with no I/O, shared by the `veto`
//! binary and the simulator so that the simulator's seeds vouch for the
//! production logic itself.
//!
//! - [`writer`]: the writer identity of a process lifetime, and the numbering
//!   and stamping of local revocations.
//! - [`gc`]: whether this node's clock may decide what has expired.
//!
//! The engine's outputs are carried out through `veto_gossip::engine::Runtime`
//! and `veto_gossip::engine::dispatch`, the same in every driver.
//!
//! This crate must never depend on tokio, sled, quinn, rustls or anything that
//! does I/O, and it never reads a clock or draws randomness of its own: time
//! and random sources are passed in. CI checks its dependency tree.

pub mod gc;
pub mod writer;

pub use gc::{may_collect, GcHold};
pub use writer::{fresh_writer, Writer};
