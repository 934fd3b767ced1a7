//! The set digest: an order-independent fingerprint of all live records.
//!
//! It is the sum, modulo 2^256, of each record's SHA-256 fingerprint, kept with the
//! record count (the construction negentropy uses). Adding and removing a record
//! are O(1), so the digest is kept current on every insert and prune, and two
//! replicas with the same live records have the same digest whatever the order
//! they learnt them in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An order-independent digest of a set of records.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SetDigest {
    // Little-endian 64-bit limbs of the 256-bit sum.
    limbs: [u64; 4],
    count: u64,
}

fn limbs_of(fingerprint: &[u8; 32]) -> [u64; 4] {
    let mut limbs = [0u64; 4];
    for (i, limb) in limbs.iter_mut().enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&fingerprint[i * 8..i * 8 + 8]);
        *limb = u64::from_le_bytes(bytes);
    }
    limbs
}

impl SetDigest {
    /// The digest of the empty set.
    pub fn new() -> SetDigest {
        SetDigest::default()
    }

    /// Adds a record's fingerprint.
    pub fn add(&mut self, fingerprint: &[u8; 32]) {
        self.add_limbs(limbs_of(fingerprint));
        self.count += 1;
    }

    /// Adds every record of another digest: the digest of the union of two
    /// disjoint sets.
    pub fn merge(&mut self, other: &SetDigest) {
        self.add_limbs(other.limbs);
        self.count = self.count.saturating_add(other.count);
    }

    fn add_limbs(&mut self, add: [u64; 4]) {
        let mut carry = false;
        for (limb, a) in self.limbs.iter_mut().zip(add) {
            let (s1, c1) = limb.overflowing_add(a);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *limb = s2;
            carry = c1 || c2;
        }
    }

    /// Removes a fingerprint added before.
    pub fn remove(&mut self, fingerprint: &[u8; 32]) {
        let sub = limbs_of(fingerprint);
        let mut borrow = false;
        for (limb, s) in self.limbs.iter_mut().zip(sub) {
            let (d1, b1) = limb.overflowing_sub(s);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *limb = d2;
            borrow = b1 || b2;
        }
        self.count = self.count.saturating_sub(1);
    }

    /// How many records the digest covers.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The lowest 64 bits of the sum: itself an order-independent digest
    /// (the sum of each fingerprint's first 8 bytes, mod 2^64), small enough
    /// to send for every origin in every anti-entropy round.
    pub fn low_limb(&self) -> u64 {
        self.limbs[0]
    }

    /// The digest as 64 hex digits of the sum followed by the count, as shown by
    /// `/v1/status`.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SetDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for limb in self.limbs.iter().rev() {
            write!(f, "{limb:016x}")?;
        }
        write!(f, "-{}", self.count)
    }
}

impl fmt::Debug for SetDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SetDigest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_remove_undoes_add() {
        let fps: Vec<[u8; 32]> = (0u8..20)
            .map(|i| [i.wrapping_mul(97).wrapping_add(200); 32])
            .collect();
        let mut a = SetDigest::new();
        let mut b = SetDigest::new();
        for f in &fps {
            a.add(f);
        }
        for f in fps.iter().rev() {
            b.add(f);
        }
        assert_eq!(a, b);
        let (mut low, mut high) = (SetDigest::new(), SetDigest::new());
        for f in &fps[..7] {
            low.add(f);
        }
        for f in &fps[7..] {
            high.add(f);
        }
        low.merge(&high);
        assert_eq!(low, a);
        for f in &fps {
            a.remove(f);
        }
        assert_eq!(a, SetDigest::new());
    }
}
