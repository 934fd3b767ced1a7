//! veto-gossip: replication between veto nodes, as a sans-IO protocol engine
//! and its wire protocol.
//!
//! [`engine`] takes inputs (a peer connected or lost, a message, a tick,
//! records revoked locally) with `now` and randomness passed in, and returns
//! outputs (messages to send, records to persist, timers). [`proto`] is the
//! messages and their bounded framing. The QUIC transport that carries them in
//! production is veto-transport; the simulator carries them over a simulated
//! network.
//!
//! This crate must never depend on tokio, quinn, rustls, sled, sockets or the
//! OS clock (CI checks its dependency tree).

pub mod engine;
pub mod proto;
