//! The 64-bit filter keys of exact-scope records and of the checks that
//! probe them.
//!
//! The hash is part of the format (a filter built on one machine is probed
//! on another, by another build), so it is defined here in a few lines
//! rather than taken from a hasher whose output may change between
//! versions. It need not resist crafted collisions: a collision can only
//! make the filter answer "maybe", which the caller confirms with the node,
//! never hide a revoked key.

use veto_core::{Check, Target};

const K: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED: u64 = 0x7665_746f_2d66_6c74;

// One tag per key namespace, so that a jti and a sid with the same text
// are different keys.
const TAG_JTI: u8 = 1;
const TAG_TOKEN_SHA: u8 = 2;
const TAG_SID: u8 = 3;
const TAG_KID: u8 = 7;

#[inline(always)]
fn word(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(K).rotate_left(31)
}

/// Absorbs `bytes` eight at a time, then their length, so that two
/// different byte strings absorbed one after the other never read alike.
#[inline]
fn absorb(mut h: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = word(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = word(h, u64::from_le_bytes(w));
    }
    word(h, bytes.len() as u64)
}

/// murmur3's finaliser: spreads every input bit over the output.
#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The filter key of `key` in namespace `tag`, for records of issuer `iss`
/// (`None`: a record that matches any issuer).
#[inline]
pub(crate) fn filter_key(tag: u8, iss: Option<&str>, key: &[u8]) -> u64 {
    let mut h = word(SEED, u64::from(tag));
    h = match iss {
        Some(i) => absorb(word(h, 1), i.as_bytes()),
        None => word(h, 0),
    };
    fmix(absorb(h, key))
}

/// The filter key of an exact-scope target, or `None` for a bulk scope or a
/// target that revokes no token.
pub(crate) fn target_key(target: &Target) -> Option<u64> {
    match target {
        Target::Token { iss, jti } => Some(filter_key(TAG_JTI, iss.as_deref(), jti.as_bytes())),
        Target::TokenHash { sha256 } => Some(filter_key(TAG_TOKEN_SHA, None, sha256)),
        Target::Session { iss, sid } => Some(filter_key(TAG_SID, iss.as_deref(), sid.as_bytes())),
        Target::Key { iss, kid } => Some(filter_key(TAG_KID, iss.as_deref(), kid.as_bytes())),
        Target::Subject { .. }
        | Target::Client { .. }
        | Target::Issuer { .. }
        | Target::Peer { .. } => None,
    }
}

/// What probing the filter for a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// No exact key of the check is in the filter.
    Clean,
    /// A key is in the filter (or may be: false positives), or the check
    /// carries an issuer-qualified key without `iss`, which records of every
    /// issuer match and so no issuer-specific key can rule out.
    Maybe,
}

/// Probes the filter for every exact key of `check`, in its issuer-specific
/// form and in its any-issuer form.
pub(crate) fn probe(check: &Check<'_>, contains: impl Fn(u64) -> bool) -> Probe {
    let qualified = [
        (TAG_JTI, check.jti),
        (TAG_SID, check.sid),
        (TAG_KID, check.kid),
    ];
    for (tag, value) in qualified {
        let Some(value) = value else { continue };
        let Some(iss) = check.iss else {
            // Fail closed: a record of any issuer matches a check without one.
            return Probe::Maybe;
        };
        if contains(filter_key(tag, Some(iss), value.as_bytes()))
            || contains(filter_key(tag, None, value.as_bytes()))
        {
            return Probe::Maybe;
        }
    }
    if let Some(sha) = &check.token_sha256 {
        if contains(filter_key(TAG_TOKEN_SHA, None, sha)) {
            return Probe::Maybe;
        }
    }
    Probe::Clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_namespace_issuer_and_boundary() {
        let a = filter_key(TAG_JTI, Some("ab"), b"c");
        assert_ne!(a, filter_key(TAG_JTI, Some("a"), b"bc"));
        assert_ne!(a, filter_key(TAG_SID, Some("ab"), b"c"));
        assert_ne!(a, filter_key(TAG_JTI, None, b"c"));
        assert_ne!(
            filter_key(TAG_JTI, None, b""),
            filter_key(TAG_JTI, Some(""), b"")
        );
    }

    #[test]
    fn keys_are_pinned() {
        // The values are part of the format: a second, independent
        // implementation of the hash gave them.
        assert_eq!(filter_key(TAG_JTI, None, b"j"), 0x0b9d_87cf_cbf0_6880);
        assert_eq!(
            filter_key(
                TAG_JTI,
                Some("https://issuer.example"),
                b"0123456789abcdef-x"
            ),
            0xc219_fbb1_ad4c_7469
        );
    }
}
