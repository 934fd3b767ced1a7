//! A configured SET transmitter: its issuer, the audience its SETs must name,
//! and the public keys (a JWKS) its SETs are signed with.

use std::fmt;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use veto_core::record::{MAX_KEY_BYTES, MAX_NOTE_BYTES};

/// Why a transmitter's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TransmitterError {
    /// The issuer or audience is empty or too long.
    #[error("transmitter {field} {problem}")]
    Field {
        /// `issuer` or `audience`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The JWKS is not a JSON Web Key Set.
    #[error("transmitter {issuer}: invalid JWKS: {reason}")]
    InvalidJwks {
        /// The transmitter's issuer.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// The JWKS holds no key that can verify a signature.
    #[error("transmitter {issuer}: the JWKS holds no usable signature key (RSA, EC P-256/P-384 or Ed25519){skipped}")]
    NoUsableKey {
        /// The transmitter's issuer.
        issuer: String,
        /// The keys that were skipped, and why, for the message.
        skipped: String,
    },
    /// The JWKS file cannot be read.
    #[error("transmitter {issuer}: cannot read JWKS file {path}: {source}")]
    ReadJwks {
        /// The transmitter's issuer.
        issuer: String,
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One verification key of a transmitter.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    /// The algorithms this key may verify: the JWK's own `alg` when it names
    /// one, else every algorithm of its type (and curve).
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
}

/// A Shared Signals transmitter whose Security Event Tokens this node accepts at
/// `POST /v1/events`.
///
/// Only asymmetric keys are used (RSA for RS*/PS*, EC P-256 for ES256, EC P-384
/// for ES384, Ed25519 for EdDSA): a shared HMAC secret does not belong in a
/// JWKS, and refusing `oct` keys rules out algorithm confusion. Keys marked
/// `"use": "enc"` are skipped.
#[derive(Clone)]
pub struct Transmitter {
    issuer: String,
    audience: String,
    pub(crate) keys: Vec<VerifyKey>,
}

impl Transmitter {
    /// A transmitter with this issuer (`iss` of its SETs), the audience its SETs
    /// must carry in `aud`, and its JWKS (`{"keys": [...]}`) as JSON.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: &serde_json::Value,
    ) -> Result<Transmitter, TransmitterError> {
        let issuer = issuer.into();
        let audience = audience.into();
        // The issuer becomes the `actor` of every record, so it must fit there.
        check_field("issuer", &issuer, MAX_NOTE_BYTES.min(MAX_KEY_BYTES))?;
        check_field("audience", &audience, MAX_KEY_BYTES)?;
        let set: JwkSet =
            serde_json::from_value(jwks.clone()).map_err(|e| TransmitterError::InvalidJwks {
                issuer: issuer.clone(),
                reason: e.to_string(),
            })?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            match verify_key(jwk) {
                Ok(k) => keys.push(k),
                Err(why) => skipped.push(format!(
                    "key {}: {why}",
                    jwk.common.key_id.as_deref().unwrap_or(&i.to_string())
                )),
            }
        }
        if keys.is_empty() {
            let skipped = if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join("; "))
            };
            return Err(TransmitterError::NoUsableKey { issuer, skipped });
        }
        for why in &skipped {
            tracing::warn!(issuer = %issuer, "SET transmitter JWKS: skipping {why}");
        }
        Ok(Transmitter {
            issuer,
            audience,
            keys,
        })
    }

    /// A transmitter whose JWKS is read from a JSON file.
    pub fn from_jwks_file(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        path: &Path,
    ) -> Result<Transmitter, TransmitterError> {
        let issuer = issuer.into();
        let text = std::fs::read_to_string(path).map_err(|source| TransmitterError::ReadJwks {
            issuer: issuer.clone(),
            path: path.display().to_string(),
            source,
        })?;
        let jwks: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| TransmitterError::InvalidJwks {
                issuer: issuer.clone(),
                reason: format!("{}: {e}", path.display()),
            })?;
        Transmitter::new(issuer, audience, &jwks)
    }

    /// The `iss` of this transmitter's SETs.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` its SETs must name.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// How many verification keys it has.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

impl fmt::Debug for Transmitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("-"))
            .collect();
        f.debug_struct("Transmitter")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kids", &kids)
            .finish()
    }
}

fn check_field(field: &'static str, value: &str, max: usize) -> Result<(), TransmitterError> {
    let problem = if value.trim().is_empty() {
        "must not be empty".to_owned()
    } else if value.len() > max {
        format!("is {} bytes; the limit is {max}", value.len())
    } else {
        return Ok(());
    };
    Err(TransmitterError::Field { field, problem })
}

/// The key and the algorithms it may verify, or why it is not used.
fn verify_key(jwk: &Jwk) -> Result<VerifyKey, String> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("not a signature key (`use` is not `sig`)".into());
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            ref c => return Err(format!("unsupported curve {c:?}")),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            return Err(format!("unsupported curve {:?}", p.curve))
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (`oct`) keys are not accepted".into())
        }
        _ => return Err("unsupported key type".into()),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(ka) => {
            let alg = Algorithm::try_from(ka)
                .map_err(|_| format!("`alg` {ka} is not a signature algorithm"))?;
            if !by_type.contains(&alg) {
                return Err(format!("`alg` {ka} does not fit the key type"));
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(VerifyKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RSA_N: &str = "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw";

    #[test]
    fn keys_are_filtered_by_use_and_type() {
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "sig", "n": RSA_N, "e": "AQAB", "alg": "RS256"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": RSA_N, "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]});
        let t = Transmitter::new("https://idp", "veto", &jwks).unwrap();
        assert_eq!(t.key_count(), 1);
        assert_eq!(t.keys[0].kid.as_deref(), Some("sig"));
        assert_eq!(t.keys[0].algorithms, vec![Algorithm::RS256]);

        let only_bad = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        let e = Transmitter::new("https://idp", "veto", &only_bad).unwrap_err();
        assert!(e.to_string().contains("symmetric"), "{e}");

        let mismatched = json!({"keys": [{"kty": "RSA", "n": RSA_N, "e": "AQAB", "alg": "ES256"}]});
        assert!(Transmitter::new("https://idp", "veto", &mismatched).is_err());

        let not_jwks = json!({"kty": "RSA"});
        assert!(matches!(
            Transmitter::new("https://idp", "veto", &not_jwks),
            Err(TransmitterError::InvalidJwks { .. })
        ));
        assert!(matches!(
            Transmitter::new(" ", "veto", &jwks),
            Err(TransmitterError::Field {
                field: "issuer",
                ..
            })
        ));
    }
}
