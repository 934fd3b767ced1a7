//! What a node enforces, kept in step with what is durable: the lookup index
//! its token checks answer from, and the peer certificates its `peer`
//! records revoke.

use veto_core::index::IndexError;
use veto_core::{Check, Hit, IndexKey, LookupIndex, Record, RecordId, Target};

use crate::details::{Details, HitDetails};
use crate::membership::RevokedPeers;

/// The records this node enforces: exactly the durable ones it holds.
#[derive(Default)]
pub struct Enforcer {
    index: LookupIndex,
    peers: RevokedPeers,
    details: HitDetails,
}

impl Enforcer {
    /// Enforces from an index built at start from the store.
    pub fn from_index(index: LookupIndex) -> Enforcer {
        Enforcer::from_parts(index, RevokedPeers::default())
    }

    /// Enforces from an index and the revoked peers, both read at start
    /// from the store (see [`Enforcer::load`]).
    pub fn from_parts(index: LookupIndex, peers: RevokedPeers) -> Enforcer {
        Enforcer {
            index,
            peers,
            details: HitDetails::default(),
        }
    }

    /// Takes in one stored record while loading: a `peer` record into the
    /// revoked peers, any other into `index`. The caller builds the index
    /// itself, so that it can size it for the store first.
    pub fn load(
        index: &mut LookupIndex,
        peers: &mut RevokedPeers,
        id: RecordId,
        target: &Target,
    ) -> Result<(), IndexError> {
        if peers.insert(id, target) {
            return Ok(());
        }
        index.insert(id, target)
    }

    /// Enforces stored records by their index keys alone, as a restart reads
    /// them (`peer` records, which have no key, go through
    /// [`Enforcer::enforce`]). What hits on them report is noted later (see
    /// [`Enforcer::note_details`]): deriving a key is the part of the work
    /// that can be done on another thread, and noting details on the thread
    /// that indexes would hold up serving. Returns the keys the index
    /// refused, as [`Enforcer::enforce`] does.
    pub fn load_keys(&mut self, keys: &[(RecordId, IndexKey)]) -> Vec<(RecordId, IndexError)> {
        keys.iter()
            .filter_map(|(id, key)| self.index.insert_key(*id, *key).err().map(|e| (*id, e)))
            .collect()
    }

    /// Enforces `records`, which just became durable. Returns those the
    /// index refused (only a 2^48 seq or 65,536 origins): they stay stored
    /// and replicated, but this node cannot answer for them. A `peer`
    /// record goes to the revoked peers, never to the index: it revokes no
    /// token.
    pub fn enforce(&mut self, records: &[Record]) -> Vec<(RecordId, IndexError)> {
        let mut refused = Vec::new();
        for record in records {
            match Enforcer::load(&mut self.index, &mut self.peers, record.id, &record.target) {
                Ok(()) => {
                    self.details.note(record);
                }
                Err(e) => refused.push((record.id, e)),
            }
        }
        refused
    }

    /// Keeps in memory what hits on `records`, stored records already
    /// enforced, report. A node loaded from ids and targets alone learns
    /// them this way, in the background; until then its hits read the store.
    pub fn note_details(&mut self, records: &[Record]) {
        for record in records {
            if !matches!(record.target, Target::Peer { .. }) {
                self.details.note(record);
            }
        }
    }

    /// What a hit on `id` reports, if it is in memory.
    pub fn details(&self, id: RecordId) -> Option<Details<'_>> {
        self.details.get(id)
    }

    /// How many enforced records have their details in memory.
    pub fn details_len(&self) -> usize {
        self.details.len()
    }

    /// Stops enforcing `records`, which garbage collection pruned.
    pub fn forget(&mut self, records: &[Record]) {
        for record in records {
            self.index.remove(record.id, &record.target);
            self.details.forget(record.id);
            self.peers.remove(record);
        }
    }

    /// The peer certificates the `peer` records held here revoke.
    pub fn revoked_peers(&self) -> &RevokedPeers {
        &self.peers
    }

    /// The record that revokes `check`, if one does.
    pub fn check(&self, check: &Check<'_>) -> Option<Hit> {
        self.index.check(check)
    }

    /// How many token records are enforced (`peer` records are not
    /// counted: they revoke no token).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing is enforced.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The index itself.
    pub fn index(&self) -> &LookupIndex {
        &self.index
    }
}

#[cfg(test)]
mod tests {
    use veto_core::{Claims, Hlc, NodeId, Revocation};

    use super::*;
    use crate::membership::PeerCert;

    fn record(seq: u64, target: Target) -> Record {
        Revocation {
            target,
            expires_at: u64::MAX,
            reason: String::new(),
            actor: "ops".into(),
        }
        .into_record(
            RecordId {
                origin: NodeId::new(3),
                seq,
            },
            Hlc(seq),
        )
    }

    #[test]
    fn a_peer_record_refuses_its_node_and_revokes_no_token() {
        let peer = record(
            1,
            Target::Peer {
                name: Some("c".into()),
                cert_sha256: None,
            },
        );
        let token = record(
            2,
            Target::Token {
                iss: None,
                jti: "c".into(),
            },
        );
        let mut e = Enforcer::default();
        assert!(e.enforce(&[peer.clone(), token.clone()]).is_empty());
        assert_eq!(e.len(), 1);
        let c = PeerCert {
            name: "c",
            sha256: &[0; 32],
        };
        assert_eq!(e.revoked_peers().revokes(&c), Some(peer.id));
        // A token whose every claim spells the peer's name is not revoked by it.
        let claims = Claims {
            sub: Some("c".into()),
            sid: Some("c".into()),
            kid: Some("c".into()),
            client_id: Some("c".into()),
            iss: Some("c".into()),
            ..Claims::default()
        };
        assert_eq!(e.check(&claims.as_check()), None);
        e.forget(&[peer]);
        assert_eq!(e.revoked_peers().revokes(&c), None);
        assert_eq!(e.len(), 1);
    }
}
