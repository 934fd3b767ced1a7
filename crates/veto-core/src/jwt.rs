//! Decoding a JWT's header and claims (base64url JSON) into a [`Check`].
//!
//! No signature is verified: that is the gateway's job, done before it asks veto.
//! A revocation lookup only needs the identifying claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::check::Claims;

/// The longest token veto will decode, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Which part of a JWT an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The JOSE header.
    Header,
    /// The claims set.
    Claims,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Claims => "claims",
        })
    }
}

/// Why a string is not a decodable JWT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token is {0} bytes; the limit is {MAX_TOKEN_BYTES}")]
    TooLong(usize),
    /// Not `header.claims.signature`.
    #[error("a JWT has three dot-separated parts; this has {0}")]
    Parts(usize),
    /// A part is not unpadded base64url.
    #[error("JWT {0} is not valid base64url")]
    Base64(Part),
    /// A part is not a JSON object.
    #[error("JWT {0} is not a JSON object")]
    NotObject(Part),
    /// A claim has the wrong JSON type.
    #[error("JWT claim `{claim}` must be {expected}")]
    ClaimType {
        /// The claim name.
        claim: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
}

/// Whether a bearer string looks like a JWT (three dot-separated parts) rather
/// than an opaque token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

fn object(part: Part, b64: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .map_err(|_| JwtError::Base64(part))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::NotObject(part)),
    }
}

fn string(map: &Map<String, Value>, claim: &'static str) -> Result<Option<String>, JwtError> {
    match map.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::ClaimType {
            claim,
            expected: "a string",
        }),
    }
}

fn numeric_date(map: &Map<String, Value>, claim: &'static str) -> Result<Option<u64>, JwtError> {
    let err = JwtError::ClaimType {
        claim,
        expected: "a non-negative NumericDate",
    };
    match map.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                        Ok(Some(f as u64))
                    }
                    _ => Err(err),
                }
            }
        }
        Some(_) => Err(err),
    }
}

/// Decodes a compact JWT's header and claims. The signature part must be present
/// but is not checked.
pub fn decode(token: &str) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLong(token.len()));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Parts(parts.len()));
    }
    let header = object(Part::Header, parts[0])?;
    let claims = object(Part::Claims, parts[1])?;
    let client_id = match string(&claims, "client_id")? {
        Some(c) => Some(c),
        None => string(&claims, "azp")?,
    };
    Ok(Claims {
        iss: string(&claims, "iss")?,
        sub: string(&claims, "sub")?,
        jti: string(&claims, "jti")?,
        sid: string(&claims, "sid")?,
        client_id,
        kid: string(&header, "kid")?,
        iat: numeric_date(&claims, "iat")?,
        exp: numeric_date(&claims, "exp")?,
        token_sha256: None,
    })
}

/// Builds an unsigned compact JWT from a header and claims. For tests, examples
/// and benchmarks: veto never issues tokens.
pub fn encode_unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_the_claims_that_matter() {
        let t = encode_unsigned(
            &json!({"alg": "RS256", "kid": "k1"}),
            &json!({"iss": "https://idp", "sub": "alice", "jti": "j1", "sid": "s1",
                    "azp": "web", "iat": 1700000000, "exp": 1700003600.5}),
        );
        let c = decode(&t).unwrap();
        assert_eq!(c.kid.as_deref(), Some("k1"));
        assert_eq!(c.client_id.as_deref(), Some("web"));
        assert_eq!(c.iat, Some(1_700_000_000));
        assert_eq!(c.exp, Some(1_700_003_600));
        assert_eq!(c.as_check().jti, Some("j1"));
    }

    #[test]
    fn reports_precisely_what_is_wrong() {
        assert_eq!(decode("abc"), Err(JwtError::Parts(1)));
        assert_eq!(decode("!!.e30.x"), Err(JwtError::Base64(Part::Header)));
        assert_eq!(decode("e30.WzFd.x"), Err(JwtError::NotObject(Part::Claims)));
        let t = encode_unsigned(&json!({}), &json!({"iat": "yesterday"}));
        assert!(matches!(
            decode(&t),
            Err(JwtError::ClaimType { claim: "iat", .. })
        ));
        let t = encode_unsigned(&json!({}), &json!({"sub": 5}));
        assert!(matches!(
            decode(&t),
            Err(JwtError::ClaimType { claim: "sub", .. })
        ));
        assert!(matches!(
            decode(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(JwtError::TooLong(_))
        ));
    }
}
