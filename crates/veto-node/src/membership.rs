//! Who may be a peer. A node's name is its certificate's common name, which
//! the transport proved in the handshake. Four rules decide, in this order,
//! whichever side dialled:
//!
//! 1. A certificate that a `peer` record revokes (by its name or by its
//!    SHA-256) is refused. The record replicates like any other, so every
//!    node that holds it refuses, including nodes that never talked to the
//!    revoked one ([`RevokedPeers`], kept by the [`Enforcer`](crate::Enforcer)
//!    with the records it enforces).
//! 2. A name the operator removed from the peer list is refused until it is
//!    added again. (Without that, a removed node that still lists this one
//!    would dial back in: any certificate of the cluster CA would do.)
//! 3. A dial to a configured address is accepted, and proves the name at
//!    that address, unless the operator listed the address under another
//!    name: then the certificate there is not the node the operator meant.
//! 4. A node that dials in is accepted only if this node lists its name: a
//!    name given with the address (`veto peers add --name`), or one proven by
//!    this node's own dial to a configured address. The peer list is an
//!    allow-list on both dial and accept.
//!
//! Rule 4 means that both sides of a link list each other. When both start at
//! once, the first dial-in may arrive before this node's own dial proved the
//! name at the other's address: it is refused, and the next attempt (or this
//! node's own dial) connects, because a dial proves the name in its TLS
//! handshake even when the other side then refuses it.

use std::collections::{BTreeMap, BTreeSet};

use veto_core::{Record, RecordId, Target};

/// The most removed names kept (each at most 255 bytes): a bound on what a
/// setting holds, far beyond any real cluster's history.
pub const MAX_REMOVED: usize = 10_000;

/// A certificate a peer presented, as the transport verified it against the
/// cluster CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCert<'a> {
    /// The node name it proves (its common name).
    pub name: &'a str,
    /// The SHA-256 of its DER encoding.
    pub sha256: &'a [u8; 32],
}

/// How a connection came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side<'a> {
    /// This node dialled the configured peer address `addr` (as configured,
    /// `host:port`).
    Dialed {
        /// The configured address.
        addr: &'a str,
    },
    /// The peer dialled this node.
    Accepted,
}

/// Why a peer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A `peer` record revokes its certificate.
    #[error("the certificate of {name:?} is revoked by peer record {record}")]
    Revoked {
        /// The name its certificate proved.
        name: String,
        /// The record that revokes it.
        record: RecordId,
    },
    /// The operator removed it from this node's peer list.
    #[error("{name:?} was removed from this node's peer list")]
    Removed {
        /// The name its certificate proved.
        name: String,
    },
    /// It dialled in, but this node does not list it as a peer.
    #[error("{name:?} is not on this node's peer list")]
    NotListed {
        /// The name its certificate proved.
        name: String,
    },
    /// The certificate at a configured address proves another name than the
    /// one the address was listed under.
    #[error("the node at {addr} proved the name {proven:?}, but it is listed as {listed:?}")]
    NameMismatch {
        /// The configured address.
        addr: String,
        /// The name it was listed under.
        listed: String,
        /// The name its certificate proved.
        proven: String,
    },
}

impl Refusal {
    /// The reason, as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Revoked { .. } => "revoked",
            Refusal::Removed { .. } => "removed",
            Refusal::NotListed { .. } => "not_listed",
            Refusal::NameMismatch { .. } => "name_mismatch",
        }
    }
}

/// The names and certificates that `peer` records this node holds revoke,
/// each with the records that do, so that collecting one record never lifts
/// a refusal another still makes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevokedPeers {
    names: BTreeMap<String, BTreeSet<RecordId>>,
    certs: BTreeMap<[u8; 32], BTreeSet<RecordId>>,
}

impl RevokedPeers {
    /// The ids of every `peer` record held.
    pub fn records(&self) -> Vec<RecordId> {
        let mut ids: Vec<RecordId> = self
            .names
            .values()
            .chain(self.certs.values())
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Takes in a record that became durable here; other scopes are
    /// ignored. Returns whether it is a `peer` record.
    pub fn insert(&mut self, id: RecordId, target: &Target) -> bool {
        let Target::Peer { name, cert_sha256 } = target else {
            return false;
        };
        if let Some(name) = name {
            self.names.entry(name.clone()).or_default().insert(id);
        }
        if let Some(sha) = cert_sha256 {
            self.certs.entry(*sha).or_default().insert(id);
        }
        true
    }

    /// Forgets a record that garbage collection pruned.
    pub fn remove(&mut self, record: &Record) {
        let Target::Peer { name, cert_sha256 } = &record.target else {
            return;
        };
        if let Some(name) = name {
            if let Some(ids) = self.names.get_mut(name) {
                ids.remove(&record.id);
                if ids.is_empty() {
                    self.names.remove(name);
                }
            }
        }
        if let Some(sha) = cert_sha256 {
            if let Some(ids) = self.certs.get_mut(sha) {
                ids.remove(&record.id);
                if ids.is_empty() {
                    self.certs.remove(sha);
                }
            }
        }
    }

    /// The first record that revokes `cert`, by its fingerprint or its name.
    pub fn revokes(&self, cert: &PeerCert<'_>) -> Option<RecordId> {
        let first = |ids: &BTreeSet<RecordId>| ids.iter().next().copied();
        self.certs
            .get(cert.sha256)
            .and_then(first)
            .or_else(|| self.names.get(cert.name).and_then(first))
    }

    /// Whether a record revokes the name `name` (whatever the certificate):
    /// a node so revoked is no longer a member for receipts and freshness.
    pub fn revokes_name(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// How many names and certificates are revoked.
    pub fn len(&self) -> usize {
        self.names.len() + self.certs.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A configured peer address: the name the operator gave, and the name the
/// certificate there proved when this node last dialled it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The name given with the address, if any.
    pub given: Option<String>,
    /// The name this node's last dial there proved, if it was accepted.
    pub proven: Option<String>,
    /// Why this node refused its last dial there, if it did.
    pub refused: Option<Refusal>,
}

/// The peer list as an allow-list, and the names removed from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    removed: BTreeSet<String>,
    listed: BTreeMap<String, Listing>,
}

impl Membership {
    /// Membership that refuses the `removed` names and lists no address yet.
    pub fn new(removed: impl IntoIterator<Item = String>) -> Membership {
        let mut m = Membership::default();
        for name in removed {
            m.remove(&name);
        }
        m
    }

    /// Lists the configured address `addr`, under `name` if one was given.
    /// Listing it again replaces the name and forgets what a dial proved.
    pub fn list(&mut self, addr: &str, name: Option<&str>) {
        self.listed.insert(
            addr.to_owned(),
            Listing {
                given: name.map(str::to_owned),
                ..Listing::default()
            },
        );
    }

    /// Stops listing `addr`; what a dial there proved is no longer a member.
    pub fn unlist(&mut self, addr: &str) -> Option<Listing> {
        self.listed.remove(addr)
    }

    /// What is known of the configured address `addr`.
    pub fn listing(&self, addr: &str) -> Option<&Listing> {
        self.listed.get(addr)
    }

    /// Whether a node of this name may dial in: listed by the operator, or
    /// proven by this node's own dial to a listed address.
    pub fn lists(&self, name: &str) -> bool {
        // A dial proves a name only where none was given, or the given one.
        self.listed
            .values()
            .any(|l| l.given.as_deref() == Some(name) || l.proven.as_deref() == Some(name))
    }

    /// Rules 1 and 2 alone: why a peer with `cert` must not stay connected,
    /// whichever side dialled. For connections already up when a record or
    /// a removal arrives.
    pub fn refusal(&self, revoked: &RevokedPeers, cert: &PeerCert<'_>) -> Option<Refusal> {
        if let Some(record) = revoked.revokes(cert) {
            return Some(Refusal::Revoked {
                name: cert.name.to_owned(),
                record,
            });
        }
        if self.removed.contains(cert.name) {
            return Some(Refusal::Removed {
                name: cert.name.to_owned(),
            });
        }
        None
    }

    /// Decides whether a peer that presented `cert` may connect, right after
    /// the TLS handshake. A dial that passes proves the name at its address;
    /// a dial refused here is remembered for the status page.
    pub fn admit(
        &mut self,
        revoked: &RevokedPeers,
        cert: &PeerCert<'_>,
        side: Side<'_>,
    ) -> Result<(), Refusal> {
        let refused = self.refusal(revoked, cert);
        match side {
            Side::Dialed { addr } => {
                let Some(listing) = self.listed.get_mut(addr) else {
                    // Unlisted while the dial was under way.
                    return Err(refused.unwrap_or_else(|| Refusal::NotListed {
                        name: cert.name.to_owned(),
                    }));
                };
                let refused = refused.or_else(|| match &listing.given {
                    Some(given) if given != cert.name => Some(Refusal::NameMismatch {
                        addr: addr.to_owned(),
                        listed: given.clone(),
                        proven: cert.name.to_owned(),
                    }),
                    _ => None,
                });
                listing.refused = refused.clone();
                match refused {
                    Some(refusal) => Err(refusal),
                    None => {
                        listing.proven = Some(cert.name.to_owned());
                        Ok(())
                    }
                }
            }
            Side::Accepted => match refused {
                Some(refusal) => Err(refusal),
                None if self.lists(cert.name) => Ok(()),
                None => Err(Refusal::NotListed {
                    name: cert.name.to_owned(),
                }),
            },
        }
    }

    /// The operator removed the peer `name`: it is refused from now on.
    /// Returns whether that changed anything.
    pub fn remove(&mut self, name: &str) -> bool {
        if name.is_empty() || self.removed.len() >= MAX_REMOVED {
            return false;
        }
        self.removed.insert(name.to_owned())
    }

    /// The operator added the peer `name` (again): it is admitted. Returns
    /// whether that changed anything.
    pub fn add(&mut self, name: &str) -> bool {
        let changed = self.removed.remove(name);
        if changed {
            // Its last dial was refused for the removal: no longer so.
            for listing in self.listed.values_mut() {
                if matches!(&listing.refused, Some(Refusal::Removed { name: n }) if n == name) {
                    listing.refused = None;
                }
            }
        }
        changed
    }

    /// Whether the operator removed `name` from the peer list.
    pub fn is_removed(&self, name: &str) -> bool {
        self.removed.contains(name)
    }

    /// The removed names, in order.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(String::as_str)
    }

    /// The removed names as stored: one per line. (The listed addresses are
    /// the peer list, stored on their own.)
    pub fn encode(&self) -> String {
        let mut text = String::new();
        for name in &self.removed {
            text.push_str(name);
            text.push('\n');
        }
        text
    }

    /// Membership from [`Membership::encode`]'s text (blank lines skipped).
    pub fn decode(text: &str) -> Membership {
        Membership::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        )
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
