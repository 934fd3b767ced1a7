//! veto-gossip: replication between veto nodes.
//!
//! Two halves. [`engine`] is a sans-IO protocol engine: it takes inputs (a peer
//! connected or lost, a message, a tick, records revoked locally) with `now` and
//! randomness passed in, and returns outputs (messages to send, records to
//! persist, timers). It must never depend on tokio, quinn, sockets or the OS
//! clock. [`transport`] carries the engine's messages over QUIC (quinn) with
//! mutual TLS, and [`tls`] makes and loads the cluster's certificates.

pub mod engine;
pub mod proto;
pub mod tls;
pub mod transport;
