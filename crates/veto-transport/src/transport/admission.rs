//! The node's say on every connection, right after the TLS handshake.

use std::net::SocketAddr;
use std::sync::Arc;

/// A peer's certificate as the TLS handshake verified it against the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The node name it proves (its common name, else its first DNS name).
    pub name: String,
    /// The SHA-256 of its DER encoding.
    pub cert_sha256: [u8; 32],
}

type Decide = dyn Fn(&PeerIdentity, Option<SocketAddr>) -> Result<(), String> + Send + Sync;

/// Decides whether a peer whose certificate the CA vouches for may connect:
/// called once per connection, after the TLS handshake and before any lane
/// opens or frame is read, with the configured address when this node dialled
/// it (`None` when the peer dialled in). `Err(reason)` closes the connection
/// with application code 5 and that reason, and no event is reported for it.
///
/// The transport knows nothing of membership; the node decides (in veto it
/// is `veto_node::Membership`). The default admits every certificate.
#[derive(Clone)]
pub struct Admission(Arc<Decide>);

impl Admission {
    /// An admission decided by `decide`.
    pub fn new(
        decide: impl Fn(&PeerIdentity, Option<SocketAddr>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Admission {
        Admission(Arc::new(decide))
    }

    /// Admits every certificate of the cluster CA.
    pub fn allow_all() -> Admission {
        Admission::new(|_, _| Ok(()))
    }

    pub(crate) fn decide(
        &self,
        peer: &PeerIdentity,
        dialed: Option<SocketAddr>,
    ) -> Result<(), String> {
        (self.0)(peer, dialed)
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::allow_all()
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission(..)")
    }
}
