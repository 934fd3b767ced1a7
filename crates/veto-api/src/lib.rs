//! veto-api: the HTTP API of a veto node, on axum.
//!
//! It must never depend on veto-store or veto-gossip: the node behind the API is
//! reached through the [`Backend`] trait, which the binary implements.

pub mod backend;

pub use backend::{Backend, BackendError, NodeInfo, PeerView, Revoked, StatusView};
