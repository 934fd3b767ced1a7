//! The clock facts a revocation's defaults and bounds come from: now by the
//! node's clock, the longest token lifetime, the maximum clock offset.

/// How far ahead of now an explicit `expires_at` may lie: ten years.
pub const MAX_EXPIRY_HORIZON: u64 = 10 * 366 * 86_400;

/// The clock facts a revocation's defaults and bounds come from, in Unix
/// seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cutoffs {
    /// Now, by the node's hybrid clock.
    pub(crate) now: u64,
    /// The longest a token may live.
    pub(crate) max_lifetime: u64,
    /// The maximum clock offset between this node and the issuers, rounded up.
    pub(crate) max_offset: u64,
}

impl Cutoffs {
    /// The default `before` of a bulk scope, and the latest one accepted.
    pub(crate) fn latest_before(&self) -> u64 {
        self.now.saturating_add(self.max_offset).saturating_add(1)
    }

    /// The latest `expires_at` accepted.
    pub(crate) fn latest_expiry(&self) -> u64 {
        self.now.saturating_add(MAX_EXPIRY_HORIZON)
    }
}
