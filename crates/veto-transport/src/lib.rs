//! veto-transport: the QUIC transport between veto nodes, on quinn, with
//! mutual TLS, and the cluster's certificates.
//!
//! It carries opaque byte frames on two lanes per connection, and unreliable
//! datagrams beside them ([`Transport::send_datagram`]), and reports
//! connections, frames and datagrams as [`TransportEvent`]s; it knows nothing of the
//! replication protocol, which lives, sans-IO, in veto-gossip. [`tls`] makes
//! (`veto cert`) and loads the cluster CA and node certificates.
//!
//! This is where tokio, quinn and rustls meet veto: the protocol and node
//! crates (veto-core, veto-gossip) must never depend on this one.

pub mod tls;
mod transport;

pub use transport::*;
