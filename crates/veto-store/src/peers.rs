//! The persisted peer list: other regions' nodes, added at start or at run time.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_meta, encode_meta};
use crate::error::StoreError;
use crate::store::{Store, TREE_PEERS};

/// The longest peer address or name accepted, in bytes.
pub const MAX_PEER_FIELD_BYTES: usize = 512;

/// One configured peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// The address it is dialled at (`host:port`), unique in the list.
    pub addr: String,
    /// The name an operator gave it, if any.
    pub name: Option<String>,
}

impl Store {
    /// Every persisted peer, ordered by address.
    pub fn peers(&self) -> Result<Vec<PeerEntry>, StoreError> {
        let mut out = Vec::new();
        for entry in self.trees()?.peers.iter() {
            let (key, bytes) = entry?;
            out.push(decode_meta(TREE_PEERS, &key, &bytes)?);
        }
        Ok(out)
    }

    /// Adds a peer, or replaces the entry with the same address. Flushes.
    pub fn put_peer(&self, peer: &PeerEntry) -> Result<(), StoreError> {
        if peer.addr.is_empty() {
            return Err(StoreError::Invalid(
                "a peer address must not be empty".into(),
            ));
        }
        let longest = peer
            .addr
            .len()
            .max(peer.name.as_ref().map_or(0, String::len));
        if longest > MAX_PEER_FIELD_BYTES {
            return Err(StoreError::Invalid(format!(
                "a peer address or name is {longest} bytes; the limit is {MAX_PEER_FIELD_BYTES}"
            )));
        }
        self.writable()?;
        let bytes = encode_meta("peer", peer)?;
        self.trees()?.peers.insert(peer.addr.as_bytes(), bytes)?;
        self.flush()
    }

    /// Removes the peer with this address; returns whether it was there. Flushes.
    pub fn remove_peer(&self, addr: &str) -> Result<bool, StoreError> {
        self.writable()?;
        let existed = self.trees()?.peers.remove(addr.as_bytes())?.is_some();
        if existed {
            self.flush()?;
        }
        Ok(existed)
    }
}
