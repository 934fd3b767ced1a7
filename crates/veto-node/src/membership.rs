//! Who may be a peer. A node's name is its certificate's common name, which
//! the transport proved in the handshake; the operator's peer list says
//! whom to dial, and the names the operator removed from it are refused
//! whichever side dials, until they are added again. (Without that, a
//! removed node that still lists this one would dial back in and be a
//! member again: any certificate of the cluster CA would do.)

use std::collections::BTreeSet;

/// The most removed names kept (each at most 255 bytes): a bound on what a
/// setting holds, far beyond any real cluster's history.
pub const MAX_REMOVED: usize = 10_000;

/// A connection refused because its node is not a member.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} was removed from this node's peer list")]
pub struct NotAMember {
    /// The name its certificate proved.
    pub name: String,
}

/// The names this node refuses as peers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    removed: BTreeSet<String>,
}

impl Membership {
    /// Membership that refuses the `removed` names.
    pub fn new(removed: impl IntoIterator<Item = String>) -> Membership {
        let mut m = Membership::default();
        for name in removed {
            m.remove(&name);
        }
        m
    }

    /// Whether a node whose certificate proved `name` may be a peer.
    pub fn admits(&self, name: &str) -> Result<(), NotAMember> {
        if self.removed.contains(name) {
            return Err(NotAMember {
                name: name.to_owned(),
            });
        }
        Ok(())
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
        self.removed.remove(name)
    }

    /// The removed names, in order.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(String::as_str)
    }

    /// The removed names as stored: one per line.
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
mod tests {
    use super::*;

    #[test]
    fn a_removed_name_is_refused_until_added_again() {
        let mut m = Membership::default();
        assert_eq!(m.admits("eu-west"), Ok(()));
        assert!(m.remove("eu-west"));
        assert!(!m.remove("eu-west"));
        assert_eq!(
            m.admits("eu-west"),
            Err(NotAMember {
                name: "eu-west".into()
            })
        );
        assert_eq!(m.admits("us-east"), Ok(()));
        let stored = Membership::decode(&m.encode());
        assert_eq!(stored, m);
        assert!(m.add("eu-west"));
        assert_eq!(m.admits("eu-west"), Ok(()));
        assert!(!m.remove(""), "an empty name is never a certificate's");
    }
}
