//! Invariants the fuzz targets assert, shared so that each target in
//! `fuzz_targets/` stays a few lines long. This crate is never a dependency of
//! veto itself.

pub mod config;
pub mod cursor;
pub mod gossip;
pub mod set;
pub mod tokens;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use veto_core::jwt::{self, JwtError, MAX_TOKEN_BYTES};
use veto_core::Claims;
use veto_core::{NodeId, RecordId};

/// Decodes `token` as a JWT and checks that the answer is consistent: an error
/// says truthfully what is wrong, and decoded claims are what the token says.
/// Panics on any inconsistency; never on a merely malformed token.
pub fn check_jwt(token: &str) {
    let parts = token.split('.').count();
    match jwt::decode(token) {
        Ok(claims) => {
            assert!(token.len() <= MAX_TOKEN_BYTES);
            assert_eq!(parts, 3);
            assert!(jwt::looks_like_jwt(token));
            check_as_check(&claims);
            check_round_trip(&claims);
        }
        Err(JwtError::TooLong(n)) => assert!(n == token.len() && n > MAX_TOKEN_BYTES),
        Err(JwtError::Parts(n)) => assert!(n == parts && n != 3),
        Err(e) => {
            assert!(token.len() <= MAX_TOKEN_BYTES, "{e}");
            assert_eq!(parts, 3, "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
}

/// The lookup built from claims carries exactly those claims.
fn check_as_check(claims: &Claims) {
    let c = claims.as_check();
    assert_eq!(c.iss, claims.iss.as_deref());
    assert_eq!(c.sub, claims.sub.as_deref());
    assert_eq!(c.jti, claims.jti.as_deref());
    assert_eq!(c.sid, claims.sid.as_deref());
    assert_eq!(c.client_id, claims.client_id.as_deref());
    assert_eq!(c.kid, claims.kid.as_deref());
    assert_eq!(c.iat, claims.iat);
    assert_eq!(c.token_sha256, None);
}

/// Claims written back into a fresh token decode to the same claims.
fn check_round_trip(claims: &Claims) {
    let mut header = Map::new();
    if let Some(kid) = &claims.kid {
        header.insert("kid".into(), Value::from(kid.as_str()));
    }
    let mut body = Map::new();
    let strings = [
        ("iss", &claims.iss),
        ("sub", &claims.sub),
        ("jti", &claims.jti),
        ("sid", &claims.sid),
        ("client_id", &claims.client_id),
    ];
    for (name, value) in strings {
        if let Some(v) = value {
            body.insert(name.into(), Value::from(v.as_str()));
        }
    }
    for (name, value) in [("iat", claims.iat), ("exp", claims.exp)] {
        if let Some(v) = value {
            body.insert(name.into(), Value::from(v));
        }
    }
    let token = jwt::encode_unsigned(&Value::Object(header), &Value::Object(body));
    // JSON escaping can make the copy longer than the original, past the limit.
    if token.len() > MAX_TOKEN_BYTES {
        return;
    }
    assert_eq!(jwt::decode(&token).as_ref(), Ok(claims), "token {token}");
}

/// Builds a JWT whose header and claims are the given bytes, split at the first
/// NUL, so that the fuzzer explores claim decoding instead of base64.
pub fn jwt_from_parts(data: &[u8]) -> String {
    let encode = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (header, claims) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"{}"[..], data),
    };
    format!("{}.{}.sig", encode(header), encode(claims))
}

/// Parses `text` as a node id and as a record id. What parses is in canonical
/// form (up to the case of hex digits) and prints back to the same id.
pub fn check_id_text(text: &str) {
    if let Ok(id) = text.parse::<NodeId>() {
        let printed = id.to_string();
        assert!(
            printed.eq_ignore_ascii_case(text),
            "{text:?} parsed as {printed}"
        );
        assert_eq!(printed.parse::<NodeId>(), Ok(id));
        assert_ne!(id.get(), 0);
    }
    if let Ok(id) = text.parse::<RecordId>() {
        let printed = id.to_string();
        assert!(
            printed.eq_ignore_ascii_case(text),
            "{text:?} parsed as {printed}"
        );
        assert_eq!(printed.parse::<RecordId>(), Ok(id));
        assert_ne!(id.seq, 0);
    }
}

/// Every id prints to text that parses back to it; seq 0 is never valid.
pub fn check_id_value(origin: u64, seq: u64) {
    let node = NodeId::new(origin);
    assert_eq!(node.to_string().parse::<NodeId>(), Ok(node));
    let id = RecordId { origin: node, seq };
    let parsed = id.to_string().parse::<RecordId>();
    if seq == 0 {
        assert!(parsed.is_err());
    } else {
        assert_eq!(parsed, Ok(id));
    }
}

/// `veto_filter::EdgeFilter::decode` never panics, and what it accepts
/// re-encodes to the very same bytes and answers lookups without panicking.
pub fn check_filter_decode(data: &[u8]) {
    let Ok(filter) = veto_filter::EdgeFilter::decode(data) else {
        return;
    };
    assert_eq!(filter.encode(), data, "a decoded filter re-encodes alike");
    let cutoff = filter.cutoffs().first();
    let check = veto_core::Check {
        iss: Some("https://issuer.example"),
        jti: Some("j-1"),
        sid: Some("s-1"),
        kid: Some("k-1"),
        sub: cutoff.map(|c| c.key.as_str()),
        iat: Some(1),
        token_sha256: Some([7; 32]),
        ..veto_core::Check::default()
    };
    let _ = filter.check(&check);
    let _ = filter.check(&veto_core::Check::default());
}
