//! The canary tokens of `veto probe`: one per revocation, with a unique `jti`
//! under the probe's own issuer, revoked with the probe's actor and reason,
//! and presented to gateways as an unsigned JWT.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use veto_client::{Claims, RevokeRequest, ScopeKind};

/// The issuer of every canary: it collides with no real issuer's tokens, and
/// names the probe in the audit trail.
pub(crate) const ISSUER: &str = "veto-probe";

/// Whom every canary revocation is made for (its `on_behalf_of`; the
/// actor is the name of the token the probe runs with).
pub(crate) const ACTOR: &str = "probe";

/// The reason recorded on every canary revocation.
pub(crate) const REASON: &str = "veto probe canary";

/// How long a canary's record matters: short, so that canaries leave the
/// store soon (after the nodes' `--gc-grace`), yet past any measurement.
const LIFETIME_SECS: u64 = 300;

/// One canary token.
#[derive(Debug, Clone)]
pub(crate) struct Canary {
    /// Its unique token id.
    pub(crate) jti: String,
    /// When it stops mattering, Unix seconds: also the JWT's `exp`.
    pub(crate) expires_at: u64,
    /// The token as a client presents it: `Authorization: Bearer <jwt>`.
    pub(crate) jwt: String,
}

fn unix_now() -> u64 {
    // A clock before 1970 gives 0: the node then refuses the expiry as in
    // the past, which reports the broken clock rather than hiding it.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Canary {
    /// A fresh canary that outlives a measurement of `timeout`.
    pub(crate) fn new(timeout: Duration) -> Canary {
        let now = unix_now();
        let lifetime = LIFETIME_SECS.max(timeout.as_secs().saturating_add(60));
        let expires_at = now.saturating_add(lifetime);
        // Time first, so that canaries sort by when they were made in the
        // audit trail; random bits so that two probes never share one.
        let jti = format!("probe-{now}-{}", hex::encode(rand::random::<[u8; 8]>()));
        // Unsigned, as veto reads every JWT: it decodes the claims and leaves
        // signatures to the gateway.
        let jwt = veto_core::jwt::encode_unsigned(
            &json!({"alg": "none", "typ": "JWT"}),
            &json!({
                "iss": ISSUER,
                "sub": ISSUER,
                "jti": jti,
                "iat": now,
                "exp": expires_at,
            }),
        );
        Canary {
            jti,
            expires_at,
            jwt,
        }
    }

    /// The revocation of this canary.
    pub(crate) fn revocation(&self) -> RevokeRequest {
        RevokeRequest::new(ScopeKind::Token)
            .iss(ISSUER)
            .jti(self.jti.as_str())
            .expires_at(self.expires_at)
            .reason(REASON)
            .actor(ACTOR)
    }

    /// The claims a node's `/v1/check` is asked about.
    pub(crate) fn claims(&self) -> Claims {
        Claims {
            iss: Some(ISSUER.to_owned()),
            jti: Some(self.jti.clone()),
            ..Claims::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwt_carries_the_revoked_claims() {
        let canary = Canary::new(Duration::from_secs(10));
        let claims = veto_core::jwt::decode(&canary.jwt).expect("a decodable JWT");
        assert_eq!(claims.iss.as_deref(), Some(ISSUER));
        assert_eq!(claims.jti.as_deref(), Some(canary.jti.as_str()));
        assert_eq!(claims.exp, Some(canary.expires_at));
        let request = canary.revocation();
        assert_eq!(request.jti, Some(canary.jti.clone()));
        assert_eq!(request.actor.as_deref(), Some(ACTOR));
    }

    #[test]
    fn canaries_are_unique_and_outlive_the_timeout() {
        let a = Canary::new(Duration::from_secs(1));
        let b = Canary::new(Duration::from_secs(1000));
        assert_ne!(a.jti, b.jti);
        assert!(b.expires_at >= unix_now() + 1000);
    }
}
