//! Decoding a JWT's header and claims (base64url JSON) for a lookup.
//!
//! No signature is verified: that is the gateway's job, done before it asks veto.
//! A revocation lookup only needs the identifying claims, so the decoder keeps
//! only those, borrowed from the decoded bytes ([`decode_in`], the hot path of
//! `?token=` and `/v1/auth`) or owned ([`decode`]). It never builds a map of
//! every claim, yet accepts and refuses exactly the tokens whose header and
//! claims `serde_json` reads as objects with claims of the right types.

mod json;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::check::{Claims, ClaimsRef};
use json::Val;

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

/// The claims a lookup reads, in the order their types are checked.
const CLAIMS: [&str; 8] = ["iss", "sub", "jti", "sid", "client_id", "azp", "iat", "exp"];

fn string<'a>(value: Val<'a>, claim: &'static str) -> Result<Option<Cow<'a, str>>, JwtError> {
    match value {
        Val::Absent | Val::Null => Ok(None),
        Val::Str(s) => Ok(Some(s)),
        _ => Err(JwtError::ClaimType {
            claim,
            expected: "a string",
        }),
    }
}

/// A NumericDate: a non-negative number of seconds; a fraction is cut off.
fn numeric_date(value: Val<'_>, claim: &'static str) -> Result<Option<u64>, JwtError> {
    match value {
        Val::Absent | Val::Null => Ok(None),
        Val::Uint(v) => Ok(Some(v)),
        Val::Float(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(JwtError::ClaimType {
            claim,
            expected: "a non-negative NumericDate",
        }),
    }
}

/// Decodes a compact JWT's header and claims into `buf` (cleared first) and
/// borrows the claims a lookup uses from it. The signature part must be
/// present but is not checked. Other claims are validated as JSON but not
/// kept; when a claim is given twice, the last one counts.
///
/// This is the one JWT decoder: [`decode`] is its owned form. Errors name the
/// first thing wrong, reading the header before the claims.
///
/// ```
/// # use veto_core::jwt;
/// let token = jwt::encode_unsigned(
///     &serde_json::json!({"kid": "k1"}),
///     &serde_json::json!({"iss": "https://idp", "jti": "t-1", "iat": 1700000000}),
/// );
/// let mut buf = Vec::new();
/// let claims = jwt::decode_in(&token, &mut buf)?;
/// assert_eq!(claims.as_check().jti, Some("t-1"));
/// # Ok::<(), jwt::JwtError>(())
/// ```
pub fn decode_in<'b>(token: &str, buf: &'b mut Vec<u8>) -> Result<ClaimsRef<'b>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLong(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Parts(token.split('.').count()));
    };
    buf.clear();
    buf.reserve((header.len() + claims.len()) * 3 / 4 + 2);
    URL_SAFE_NO_PAD
        .decode_vec(header.trim_end_matches('='), buf)
        .map_err(|_| JwtError::Base64(Part::Header))?;
    let split = buf.len();
    if URL_SAFE_NO_PAD
        .decode_vec(claims.trim_end_matches('='), buf)
        .is_err()
    {
        // A header that is not an object is the first thing wrong.
        buf.truncate(split);
        json::members(buf, &["kid"]).ok_or(JwtError::NotObject(Part::Header))?;
        return Err(JwtError::Base64(Part::Claims));
    }
    let bytes: &'b [u8] = buf;
    let (header, claims) = bytes.split_at(split);
    let [kid] = json::members(header, &["kid"]).ok_or(JwtError::NotObject(Part::Header))?;
    let [iss, sub, jti, sid, client_id, azp, iat, exp] =
        json::members(claims, &CLAIMS).ok_or(JwtError::NotObject(Part::Claims))?;
    // `azp` stands in for `client_id` only when there is no `client_id`.
    let client_id = match string(client_id, "client_id")? {
        Some(c) => Some(c),
        None => string(azp, "azp")?,
    };
    Ok(ClaimsRef {
        iss: string(iss, "iss")?,
        sub: string(sub, "sub")?,
        jti: string(jti, "jti")?,
        sid: string(sid, "sid")?,
        client_id,
        kid: string(kid, "kid")?,
        iat: numeric_date(iat, "iat")?,
        exp: numeric_date(exp, "exp")?,
        token_sha256: None,
    })
}

/// Decodes a compact JWT's header and claims into owned [`Claims`]: the owned
/// form of [`decode_in`], with the same answers and errors.
pub fn decode(token: &str) -> Result<Claims, JwtError> {
    decode_in(token, &mut Vec::new()).map(ClaimsRef::into_owned)
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
