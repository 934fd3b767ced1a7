//! Verifying a SET: a compact JWS with `typ` `secevent+jwt`, from a configured
//! transmitter, signed by one of its keys, naming this receiver in `aud`.
//!
//! The order of the checks decides the error code, and nothing from a SET is
//! trusted before its signature verifies: only `iss` is read first, to choose
//! the keys. The `aud` is compared after the signature, so a forger learns
//! nothing from the answer about the receiver's audience.

use std::str::FromStr as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use veto_core::record::MAX_KEY_BYTES;

use super::transmitter::Transmitter;
use super::{SetError, SetErrorCode};

/// The claims of a verified SET that veto uses.
#[derive(Debug)]
pub(crate) struct SetClaims {
    pub(crate) jti: String,
    pub(crate) iat: u64,
    /// RFC 8417 `toe`, the time of the event, if given.
    pub(crate) toe: Option<u64>,
    /// The SSF subject of the whole SET, if given.
    pub(crate) sub_id: Option<Value>,
    pub(crate) events: Map<String, Value>,
}

/// A SET whose signature, issuer and audience are verified.
#[derive(Debug)]
pub(crate) struct VerifiedSet {
    /// Index of the transmitter in the configured list.
    pub(crate) transmitter: usize,
    pub(crate) claims: SetClaims,
}

#[derive(Deserialize)]
struct JoseHeader {
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

fn invalid(msg: impl Into<String>) -> SetError {
    SetError::new(SetErrorCode::InvalidRequest, msg)
}

fn decode_part(part: &str, what: &str) -> Result<Value, SetError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| invalid(format!("the JWS {what} is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("the JWS {what} is not JSON: {e}")))
}

/// Whether `typ` names a SET (RFC 8417 §2.3; the `application/` prefix may be
/// given or left out, RFC 7515 §4.1.9).
fn is_set_type(typ: &str) -> bool {
    let t = typ.trim();
    let t = match t.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
        _ => t,
    };
    t.eq_ignore_ascii_case("secevent+jwt")
}

/// Verifies a SET against the configured transmitters.
pub(crate) fn verify(token: &str, transmitters: &[Transmitter]) -> Result<VerifiedSet, SetError> {
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => {
            return Err(invalid(
                "encrypted SETs (JWE) are not supported; send a signed JWS",
            ))
        }
        n => {
            return Err(invalid(format!(
                "the body is not a compact JWS: it has {n} dot-separated parts, not 3"
            )))
        }
    }
    let header: JoseHeader = serde_json::from_value(decode_part(parts[0], "header")?)
        .map_err(|e| invalid(format!("the JWS header is malformed: {e}")))?;
    match header.typ.as_deref() {
        Some(t) if is_set_type(t) => {}
        Some(t) => {
            return Err(invalid(format!(
                "the JWS header `typ` is {t:?}, not \"secevent+jwt\""
            )))
        }
        None => {
            return Err(invalid(
                "the JWS header has no `typ`; a SET has \"secevent+jwt\"",
            ))
        }
    }
    if header.crit.is_some() {
        return Err(invalid(
            "the JWS header has `crit` extensions, which this receiver does not understand",
        ));
    }
    let alg_name = header
        .alg
        .ok_or_else(|| invalid("the JWS header has no `alg`"))?;
    let alg = Algorithm::from_str(&alg_name)
        .ok()
        .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .ok_or_else(|| {
            SetError::new(
                SetErrorCode::InvalidKey,
                format!("`alg` {alg_name:?} is not accepted; SETs must be signed with RS*, PS*, ES256, ES384 or EdDSA"),
            )
        })?;

    // Only the issuer is read before the signature is checked.
    let unverified = decode_part(parts[1], "payload")?;
    let iss = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the SET has no `iss` string"))?;
    let (index, transmitter) = transmitters
        .iter()
        .enumerate()
        .find(|(_, t)| t.issuer() == iss)
        .ok_or_else(|| {
            SetError::new(
                SetErrorCode::InvalidIssuer,
                format!("{iss:?} is not a transmitter this receiver accepts SETs from"),
            )
        })?;

    let candidates: Vec<_> = transmitter
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.kid == header.kid)
        .collect();
    if candidates.is_empty() {
        return Err(SetError::new(
            SetErrorCode::InvalidKey,
            format!(
                "transmitter {iss:?} has no key with kid {:?}",
                header.kid.as_deref().unwrap_or_default()
            ),
        ));
    }
    let candidates: Vec<_> = candidates
        .into_iter()
        .filter(|k| k.algorithms.contains(&alg))
        .collect();
    if candidates.is_empty() {
        return Err(SetError::new(
            SetErrorCode::InvalidKey,
            format!("no key of transmitter {iss:?} is for `alg` {alg_name}"),
        ));
    }

    let mut validation = Validation::new(alg);
    validation.set_audience(&[transmitter.audience()]);
    validation.set_issuer(&[transmitter.issuer()]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    // A SET reports something that happened; one delivered late still reports
    // it, so `exp` and `nbf` are not enforced.
    validation.validate_exp = false;
    validation.validate_nbf = false;

    let mut claims = None;
    for key in candidates {
        match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => match e.kind() {
                ErrorKind::InvalidSignature => continue,
                ErrorKind::InvalidAudience | ErrorKind::MissingRequiredClaim(_) => {
                    return Err(SetError::new(
                        SetErrorCode::InvalidAudience,
                        format!(
                            "the SET's `aud` does not name this receiver ({:?})",
                            transmitter.audience()
                        ),
                    ))
                }
                ErrorKind::InvalidIssuer => {
                    return Err(SetError::new(
                        SetErrorCode::InvalidIssuer,
                        "the SET's `iss` does not match its transmitter",
                    ))
                }
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::UnsupportedAlgorithm => {
                    return Err(SetError::new(
                        SetErrorCode::InvalidKey,
                        format!("the SET cannot be verified with the keys of {iss:?}: {e}"),
                    ))
                }
                _ => return Err(invalid(format!("the SET is malformed: {e}"))),
            },
        }
    }
    let Some(claims) = claims else {
        return Err(SetError::new(
            SetErrorCode::AuthenticationFailed,
            format!("the signature does not verify with any key of transmitter {iss:?}"),
        ));
    };
    Ok(VerifiedSet {
        transmitter: index,
        claims: set_claims(claims)?,
    })
}

/// A NumericDate claim as whole seconds (fractions are cut; RFC 7519 allows
/// them).
pub(crate) fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

fn set_claims(claims: Value) -> Result<SetClaims, SetError> {
    let Value::Object(mut map) = claims else {
        return Err(invalid("the SET payload is not a JSON object"));
    };
    let iat = map
        .get("iat")
        .and_then(numeric_date)
        .ok_or_else(|| invalid("the SET has no `iat` (Unix seconds)"))?;
    let jti = match map.remove("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= MAX_KEY_BYTES => j,
        Some(Value::String(j)) if !j.is_empty() => {
            return Err(invalid(format!(
                "the SET's `jti` is {} bytes; the limit is {MAX_KEY_BYTES}",
                j.len()
            )))
        }
        _ => return Err(invalid("the SET has no `jti` string")),
    };
    let toe = map.get("toe").and_then(numeric_date);
    let sub_id = map.remove("sub_id");
    let events = match map.remove("events") {
        Some(Value::Object(events)) if !events.is_empty() => events,
        Some(Value::Object(_)) => return Err(invalid("the SET's `events` is empty")),
        _ => return Err(invalid("the SET has no `events` object")),
    };
    Ok(SetClaims {
        jti,
        iat,
        toe,
        sub_id,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_accepts_the_media_type_with_or_without_prefix() {
        assert!(is_set_type("secevent+jwt"));
        assert!(is_set_type("application/secevent+jwt"));
        assert!(is_set_type("SECEVENT+JWT"));
        assert!(!is_set_type("JWT"));
        assert!(!is_set_type("application/jwt"));
    }

    #[test]
    fn numeric_dates_may_have_fractions() {
        assert_eq!(
            numeric_date(&serde_json::json!(1_700_000_000)),
            Some(1_700_000_000)
        );
        assert_eq!(
            numeric_date(&serde_json::json!(1_700_000_000.7)),
            Some(1_700_000_000)
        );
        assert_eq!(numeric_date(&serde_json::json!(-5)), None);
        assert_eq!(numeric_date(&serde_json::json!("1")), None);
    }
}
