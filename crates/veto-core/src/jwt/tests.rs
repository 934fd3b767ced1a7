//! The decoder against a reference that reads header and claims as
//! `serde_json::Value` maps, on tricky JSON and on many mutated tokens: the
//! same claims, or the same error.

use serde_json::{json, Map};

use super::*;

/// The reference: every part a `serde_json::Value` object, then the claims
/// read from the maps in the decoder's order.
fn reference(token: &str) -> Result<Claims, JwtError> {
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
    fn date(map: &Map<String, Value>, claim: &'static str) -> Result<Option<u64>, JwtError> {
        let err = JwtError::ClaimType {
            claim,
            expected: "a non-negative NumericDate",
        };
        match map.get(claim) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(v), _) => Ok(Some(v)),
                (None, Some(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                    Ok(Some(f as u64))
                }
                _ => Err(err),
            },
            Some(_) => Err(err),
        }
    }
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
        iat: date(&claims, "iat")?,
        exp: date(&claims, "exp")?,
        token_sha256: None,
    })
}

/// Both forms of the decoder give the reference's answer. Returns whether
/// the token was accepted.
#[track_caller]
fn agree(token: &str) -> bool {
    let expected = reference(token);
    assert_eq!(decode(token), expected, "token {token:?}");
    // A buffer left over from another token must not matter.
    let mut buf = b"left over".to_vec();
    let borrowed = decode_in(token, &mut buf).map(ClaimsRef::into_owned);
    assert_eq!(borrowed, expected, "token {token:?}");
    expected.is_ok()
}

fn b64(s: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn token(header: &[u8], claims: &[u8]) -> String {
    format!("{}.{}.sig", b64(header), b64(claims))
}

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
fn borrows_what_has_no_escapes() {
    let t = token(br#"{"kid":"k1"}"#, br#"{"iss":"https:\/\/idp","jti":"j1"}"#);
    let mut buf = Vec::new();
    let c = decode_in(&t, &mut buf).unwrap();
    assert!(matches!(c.kid, Some(Cow::Borrowed("k1"))));
    assert!(matches!(c.jti, Some(Cow::Borrowed("j1"))));
    assert!(matches!(&c.iss, Some(Cow::Owned(s)) if s == "https://idp"));
    assert_eq!(c.as_check().iss, Some("https://idp"));
}

#[test]
fn reports_precisely_what_is_wrong() {
    assert_eq!(decode("abc"), Err(JwtError::Parts(1)));
    assert_eq!(decode("a.b.c.d"), Err(JwtError::Parts(4)));
    assert_eq!(decode("!!.e30.x"), Err(JwtError::Base64(Part::Header)));
    assert_eq!(decode("e30.!!.x"), Err(JwtError::Base64(Part::Claims)));
    // The header is read before the claims.
    assert_eq!(decode("WzFd.!!.x"), Err(JwtError::NotObject(Part::Header)));
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
    assert_eq!(
        JwtError::ClaimType {
            claim: "iat",
            expected: "a non-negative NumericDate"
        }
        .to_string(),
        "JWT claim `iat` must be a non-negative NumericDate"
    );
}

#[test]
fn agrees_with_the_reference_on_tricky_json() {
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
        br#"{"sub":5,"iss":7,"jti":[],"sid":{},"iat":"x","exp":"y"}"#,
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
        "e30.!!.x",
        "WzFd.!!.x",
        "e30.WzFd.x",
        "e30.e30.",
        "e30=.e30=.x",
        "e30.e30",
        "e30.e30.x.y",
        "..",
        "",
    ] {
        agree(raw);
    }
    agree(&format!("e30.{}.x", "e".repeat(MAX_TOKEN_BYTES)));
    // Nesting just inside and far beyond serde_json's depth limit.
    for depth in [100, 127, 128, 129, 1_000] {
        let deep = format!(r#"{{"x":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        agree(&token(b"{}", deep.as_bytes()));
        agree(&token(deep.as_bytes(), b"{}"));
    }
}

#[test]
fn agrees_with_the_reference_on_mutated_tokens() {
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
    assert!(agree(&token(header, claims)));
    let mut accepted = 0;
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
        accepted += usize::from(agree(&token(&h, &c)));
    }
    // Many mutations keep the JSON valid: both outcomes are well covered.
    assert!(accepted > 1_000, "{accepted}");
}
