//! JWT claim decoding for the lookup hot path.
//!
//! `veto_core::jwt::decode` builds a `serde_json::Map` of every claim and copies
//! each string, which is most of the cost of a `/v1/auth` request. This module
//! decodes the same token into borrowed strings, keeps only the claims a lookup
//! uses, and skips the rest without allocating, while validating them exactly as
//! `serde_json::Value` would (numbers, escapes, UTF-8, nesting depth). Duplicate
//! claims keep the last value, as a map does.
//!
//! The result is the same as veto-core's: whenever this fast path fails for any
//! reason, the token is decoded again by `veto_core::jwt::decode`, which gives
//! the answer or the precise error. Tests compare the two on many tokens.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use veto_core::jwt::{self, JwtError, MAX_TOKEN_BYTES};
use veto_core::Check;

/// A claim value as far as a lookup cares: a string, null, a number, or
/// anything else (which is an error only if the lookup needs that claim).
#[derive(Debug, Default)]
enum Val<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Uint(u64),
    /// A negative integer or a float, kept as the f64 that `Value::as_f64` gives.
    Float(f64),
    Other,
}

impl<'a> Val<'a> {
    fn string(self) -> Result<Option<Cow<'a, str>>, ()> {
        match self {
            Val::Absent | Val::Null => Ok(None),
            Val::Str(s) => Ok(Some(s)),
            _ => Err(()),
        }
    }

    /// `veto_core::jwt`'s NumericDate rule.
    fn numeric_date(self) -> Result<Option<u64>, ()> {
        match self {
            Val::Absent | Val::Null => Ok(None),
            Val::Uint(v) => Ok(Some(v)),
            Val::Float(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f as u64)),
            _ => Err(()),
        }
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Uint(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Val::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Val::Other)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// A value that is parsed and validated like `serde_json::Value` but not kept.
/// Unlike `IgnoredAny`, it rejects what `Value` rejects (out-of-range numbers,
/// lone surrogates), so the fast path never accepts a token veto-core refuses.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(ValVisitor).map(|_| Skip)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        match d.deserialize_str(ValVisitor)? {
            Val::Str(s) => Ok(Key(s)),
            _ => Err(de::Error::custom("object key is not a string")),
        }
    }
}

/// Collects the named members of one JSON object (the last of duplicates wins)
/// and validates the others.
struct Members<'n, const N: usize> {
    names: &'n [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Members<'_, N> {
    type Value = [Val<'de>; N];

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<[Val<'de>; N], D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Members<'_, N> {
    type Value = [Val<'de>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<[Val<'de>; N], A::Error> {
        let mut out: [Val<'de>; N] = std::array::from_fn(|_| Val::Absent);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.names.iter().position(|n| *n == key) {
                Some(i) => out[i] = map.next_value::<Val<'de>>()?,
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(out)
    }
}

fn members<'de, const N: usize>(
    json: &'de [u8],
    names: &[&'static str; N],
) -> Option<[Val<'de>; N]> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let out = Members { names }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(out)
}

const CLAIMS: [&str; 8] = ["iss", "sub", "jti", "sid", "client_id", "azp", "iat", "exp"];

/// Runs `f` on the lookup for a JWT: its header's `kid`, its claims and the
/// given SHA-256 of the whole token. Errors are veto-core's.
pub(crate) fn with_jwt_check<R>(
    token: &str,
    token_sha256: [u8; 32],
    f: impl FnOnce(&Check<'_>) -> R,
) -> Result<R, JwtError> {
    let mut buf = Vec::new();
    if let Some(split) = decode_parts(token, &mut buf) {
        let (header, claims) = buf.split_at(split);
        if let Some(check) = fast_check(header, claims) {
            return Ok(f(&Check {
                token_sha256: Some(token_sha256),
                ..check.as_check()
            }));
        }
    }
    let claims = jwt::decode(token)?;
    Ok(f(&Check {
        token_sha256: Some(token_sha256),
        ..claims.as_check()
    }))
}

/// Decodes header and claims into `buf`; returns where the claims start.
fn decode_parts(token: &str, buf: &mut Vec<u8>) -> Option<usize> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (header, claims, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    buf.reserve((header.len() + claims.len()) * 3 / 4 + 2);
    URL_SAFE_NO_PAD
        .decode_vec(header.trim_end_matches('='), buf)
        .ok()?;
    let split = buf.len();
    URL_SAFE_NO_PAD
        .decode_vec(claims.trim_end_matches('='), buf)
        .ok()?;
    Some(split)
}

/// The borrowed claims a lookup uses.
struct FastClaims<'a> {
    iss: Option<Cow<'a, str>>,
    sub: Option<Cow<'a, str>>,
    jti: Option<Cow<'a, str>>,
    sid: Option<Cow<'a, str>>,
    client_id: Option<Cow<'a, str>>,
    kid: Option<Cow<'a, str>>,
    iat: Option<u64>,
}

impl FastClaims<'_> {
    fn as_check(&self) -> Check<'_> {
        Check {
            iss: self.iss.as_deref(),
            sub: self.sub.as_deref(),
            jti: self.jti.as_deref(),
            sid: self.sid.as_deref(),
            client_id: self.client_id.as_deref(),
            kid: self.kid.as_deref(),
            iat: self.iat,
            token_sha256: None,
        }
    }
}

fn fast_check<'a>(header: &'a [u8], claims: &'a [u8]) -> Option<FastClaims<'a>> {
    let [kid] = members(header, &["kid"])?;
    let [iss, sub, jti, sid, client_id, azp, iat, exp] = members(claims, &CLAIMS)?;
    // veto-core reads `client_id` first and `azp` only without it, and checks
    // the type of each claim it reads, in this order.
    let client_id = match client_id.string().ok()? {
        Some(c) => Some(c),
        None => azp.string().ok()?,
    };
    let out = FastClaims {
        iss: iss.string().ok()?,
        sub: sub.string().ok()?,
        jti: jti.string().ok()?,
        sid: sid.string().ok()?,
        client_id,
        kid: kid.string().ok()?,
        iat: iat.numeric_date().ok()?,
    };
    // `exp` is not used by a lookup, but a token veto-core refuses for a bad
    // `exp` must be refused here too.
    exp.numeric_date().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Owned {
        iss: Option<String>,
        sub: Option<String>,
        jti: Option<String>,
        sid: Option<String>,
        client_id: Option<String>,
        kid: Option<String>,
        iat: Option<u64>,
    }

    fn owned(c: &Check<'_>) -> Owned {
        let s = |v: Option<&str>| v.map(str::to_owned);
        Owned {
            iss: s(c.iss),
            sub: s(c.sub),
            jti: s(c.jti),
            sid: s(c.sid),
            client_id: s(c.client_id),
            kid: s(c.kid),
            iat: c.iat,
        }
    }

    /// The fast path alone, without the fallback.
    fn fast_only(token: &str) -> Option<Owned> {
        let mut buf = Vec::new();
        let split = decode_parts(token, &mut buf)?;
        let (h, c) = buf.split_at(split);
        fast_check(h, c).map(|f| owned(&f.as_check()))
    }

    fn core(token: &str) -> Result<Owned, JwtError> {
        jwt::decode(token).map(|c| owned(&c.as_check()))
    }

    #[track_caller]
    fn agree(token: &str) {
        let core = core(token);
        let fast = with_jwt_check(token, [0; 32], owned);
        assert_eq!(fast, core, "token {token:?}");
        if let Some(f) = fast_only(token) {
            assert_eq!(
                Ok(f),
                core,
                "fast path accepted what core did not: {token:?}"
            );
        }
    }

    fn b64(s: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &[u8], claims: &[u8]) -> String {
        format!("{}.{}.sig", b64(header), b64(claims))
    }

    #[test]
    fn agrees_with_veto_core_on_tricky_json() {
        let headers: &[&[u8]] = &[
            br#"{"alg":"RS256","kid":"k1"}"#,
            br#"{"kid":null}"#,
            br#"{"kid":5}"#,
            br#"{"kid":"a","kid":"b"}"#,
            br#"{"kid":"\u006b\/1"}"#,
            br#"["kid"]"#,
            b"{}",
            b" { } ",
            br#"{"x":1e400}"#,
            br#"{"x":"\ud800"}"#,
            b"{\"x\":\"\xff\"}",
            br#"{"nested":{"a":[1,{"b":null}]}}"#,
        ];
        let claims: &[&[u8]] = &[
            br#"{"iss":"https://idp","sub":"alice","jti":"j1","sid":"s1","iat":1700000000,"exp":1700003600}"#,
            br#"{"iss":"https:\/\/idp","sub":"\u00e9","iat":1.7e9,"exp":1700003600.5}"#,
            br#"{"client_id":"c","azp":"a"}"#,
            br#"{"client_id":null,"azp":"a"}"#,
            br#"{"client_id":"c","azp":7}"#,
            br#"{"client_id":7,"azp":"a"}"#,
            br#"{"azp":["a"]}"#,
            br#"{"iat":-1}"#,
            br#"{"iat":-0.0}"#,
            br#"{"iat":"1700000000"}"#,
            br#"{"iat":1e30}"#,
            br#"{"iat":18446744073709551615}"#,
            br#"{"iat":18446744073709551616}"#,
            br#"{"exp":true}"#,
            br#"{"exp":null,"iat":null}"#,
            br#"{"sub":5}"#,
            br#"{"sub":"a","sub":5}"#,
            br#"{"sub":5,"sub":"a"}"#,
            br#"{"aud":["x","y"],"scope":"a b","x":{"y":[1.5,-2,null,true]}}"#,
            br#"{"big":1e400}"#,
            br#"{"s":"\ud800"}"#,
            br#"{"s":"\ud83d\ude00"}"#,
            b"{\"s\":\"\xc3\x28\"}",
            b"{\"sub\":\"\xe2\x82\xac\"}",
            br#"{"sub":"a"} x"#,
            br#"{"sub":"a"}"#,
            br#"[1]"#,
            br#"{"#,
            b"",
            br#"{"\u0073ub":"escaped-key"}"#,
        ];
        for h in headers {
            for c in claims {
                agree(&token(h, c));
            }
        }
        for raw in [
            "a.b.c",
            "!!.e30.x",
            "e30.WzFd.x",
            "e30.e30.",
            "e30=.e30=.x",
            "e30.e30",
        ] {
            agree(raw);
        }
        agree(&format!("e30.{}.x", "e".repeat(MAX_TOKEN_BYTES)));
    }

    #[test]
    fn agrees_with_veto_core_on_mutated_tokens() {
        let header = br#"{"alg":"ES256","kid":"key-1"}"#;
        let claims = br#"{"iss":"https://idp","sub":"alice","jti":"j-1","sid":"s","azp":"web","iat":1700000000,"exp":1700003600.25,"aud":["a",{"b":[null,-1e3]}]}"#;
        // A small deterministic generator: no dependency, same cases every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"{}[]\",:\\u0123456789.eE+-ntrfalsu \xff\xc3";
        assert!(fast_only(&token(header, claims)).is_some());
        let mut fast_hits = 0;
        for _ in 0..20_000 {
            let mut h = header.to_vec();
            let mut c = claims.to_vec();
            for _ in 0..=(next() % 3) {
                let target = if next() % 4 == 0 { &mut h } else { &mut c };
                let pos = (next() as usize) % target.len();
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => target[pos] = byte,
                    1 => target.insert(pos, byte),
                    _ => {
                        target.remove(pos);
                    }
                }
            }
            let t = token(&h, &c);
            agree(&t);
            fast_hits += usize::from(fast_only(&t).is_some());
        }
        // Many mutations keep the JSON valid; the fast path must take those.
        assert!(fast_hits > 1_000, "{fast_hits}");
    }
}
