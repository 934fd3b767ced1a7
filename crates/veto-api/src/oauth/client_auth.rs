//! Client authentication at `POST /oauth2/revoke` (RFC 7009 §2.1, RFC 6749
//! §2.3.1).
//!
//! A client proves itself with one of:
//!
//! - `client_secret_basic`: `Authorization: Basic base64(id:secret)`, where the
//!   client id and secret are each form-url-encoded before they are joined
//!   (RFC 6749 appendix B), so `%3A` in an id is a colon and `+` a space;
//! - `client_secret_post`: the form fields `client_id` and `client_secret`;
//! - the secret as `Authorization: Bearer <secret>`, as on every admin endpoint.
//!
//! The secret is one of the node's API tokens (the admin token, or a named
//! token with the `revoke` role); the client id is free-form and only
//! identifies the client. A Basic password that is not form-url-encoded (what
//! `curl -u` sends) is accepted too, so a token with a `+` or `%` works from
//! clients that encode and from clients that do not. Secrets are compared in
//! constant time through their SHA-256.
//!
//! A request that uses more than one method (an `Authorization` header and a
//! `client_secret` field) is refused with 400 `invalid_request`: RFC 6749 §2.3
//! says a client MUST NOT use more than one, and §5.2 lists "utilizes more than
//! one mechanism for authenticating the client" under `invalid_request`, not
//! `invalid_client`. The same holds for a repeated credential field, and for a
//! form `client_id` that names another client than the Basic credentials do.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::tokens::{Principal, TokenTable};

/// The credential fields of the request body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FormCredentials {
    /// `client_id`, form-decoded.
    pub(crate) client_id: Option<String>,
    /// `client_secret`, form-decoded.
    pub(crate) client_secret: Option<String>,
}

/// The authentication scheme a client used, which names the challenge of a
/// 401 answer (RFC 6749 §5.2: it must match the scheme the client used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// HTTP Basic, or no `Authorization` header at all.
    Basic,
    /// A bearer token.
    Bearer,
}

impl Scheme {
    /// The `WWW-Authenticate` value for a 401 answer. Basic comes first, as
    /// that is the scheme OAuth clients use; a client that sent a bearer
    /// token also finds its own scheme challenged.
    pub(crate) fn challenge(self) -> &'static str {
        match self {
            Scheme::Basic => "Basic realm=\"veto\"",
            Scheme::Bearer => "Basic realm=\"veto\", Bearer realm=\"veto\"",
        }
    }
}

/// Why a client is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientAuthError {
    /// 400 `invalid_request`: the request is ambiguous about who the client is.
    Request(String),
    /// 401 `invalid_client`, with the challenge of this scheme.
    Client(Scheme, String),
}

fn client(scheme: Scheme, message: &str) -> ClientAuthError {
    ClientAuthError::Client(scheme, message.to_owned())
}

/// What the `Authorization` header carried.
enum Header {
    None,
    Bearer(Vec<u8>),
    /// The form-decoded id, the form-decoded secret, and the raw secret.
    Basic {
        id: Vec<u8>,
        secret: Vec<u8>,
        raw_secret: Vec<u8>,
    },
}

/// Splits an `Authorization` value into its scheme's credentials, the scheme
/// being case-insensitive (RFC 9110 §11.1).
fn credentials<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn read_header(headers: &HeaderMap) -> Result<Header, ClientAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(Header::None);
    };
    if values.next().is_some() {
        return Err(ClientAuthError::Request(
            "more than one Authorization header".to_owned(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| client(Scheme::Basic, "the Authorization header is not valid text"))?;
    if let Some(token) = credentials(value, "Bearer") {
        return Ok(Header::Bearer(token.as_bytes().to_vec()));
    }
    let Some(b64) = credentials(value, "Basic") else {
        return Err(client(
            Scheme::Basic,
            "the Authorization header must be Basic client credentials or a Bearer token",
        ));
    };
    let decoded = STANDARD
        .decode(b64)
        .map_err(|_| client(Scheme::Basic, "the Basic credentials are not valid base64"))?;
    // The id is form-url-encoded, so a colon in it arrives as `%3A` and the
    // first colon is the separator.
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return Err(client(
            Scheme::Basic,
            "the Basic credentials must be client_id:client_secret",
        ));
    };
    let (id, secret) = (&decoded[..colon], &decoded[colon + 1..]);
    Ok(Header::Basic {
        id: form_decode(id),
        secret: form_decode(secret),
        raw_secret: secret.to_vec(),
    })
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space and `%XX`
/// a byte. A `%` not followed by two hex digits stands for itself, as in the
/// WHATWG URL standard's form decoder.
pub(crate) fn form_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = input.get(i + 1).and_then(|c| hex_value(*c));
                let lo = input.get(i + 2).and_then(|c| hex_value(*c));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// An authenticated client: the token its secret is, and the client id it
/// gave, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    /// Who the secret authenticates as.
    pub(crate) principal: Principal,
    /// The client id of Basic or of the form, when one was given.
    pub(crate) client_id: Option<String>,
}

/// Authenticates the client of a revocation request: its secret is one of
/// the node's API tokens.
pub(crate) fn authenticate(
    headers: &HeaderMap,
    form: &FormCredentials,
    tokens: &TokenTable,
) -> Result<Client, ClientAuthError> {
    let header = read_header(headers)?;
    let scheme = match header {
        Header::Bearer(_) => Scheme::Bearer,
        _ => Scheme::Basic,
    };
    if form.client_secret.is_some() && !matches!(header, Header::None) {
        return Err(ClientAuthError::Request(
            "the client authenticates both in the Authorization header and with \
             `client_secret`; use one method only"
                .to_owned(),
        ));
    }
    if let (Header::Basic { id, .. }, Some(form_id)) = (&header, &form.client_id) {
        if id != form_id.as_bytes() {
            return Err(ClientAuthError::Request(
                "the form field `client_id` differs from the client id of the Basic credentials"
                    .to_owned(),
            ));
        }
    }
    if tokens.is_empty() {
        return Err(client(
            scheme,
            "client authentication is disabled: this node accepts no API token",
        ));
    }
    let client_id = match &header {
        Header::Basic { id, .. } => Some(String::from_utf8_lossy(id).into_owned()),
        _ => form.client_id.clone(),
    };
    let found = match &header {
        Header::Bearer(token) => tokens.lookup(token),
        Header::Basic {
            secret, raw_secret, ..
        } => {
            // Both are looked up, so the time taken does not say which matched.
            let decoded = tokens.lookup(secret);
            let raw = tokens.lookup(raw_secret);
            decoded.or(raw)
        }
        Header::None => match (&form.client_id, &form.client_secret) {
            (Some(_), Some(secret)) => tokens.lookup(secret.as_bytes()),
            (None, Some(_)) => {
                return Err(ClientAuthError::Request(
                    "`client_secret` needs `client_id` beside it (RFC 6749 §2.3.1)".to_owned(),
                ))
            }
            (_, None) => {
                return Err(client(
                    scheme,
                    "no client authentication: send the client credentials as HTTP Basic, \
                     as the form fields `client_id` and `client_secret`, or the admin token \
                     as a Bearer token",
                ))
            }
        },
    };
    match found {
        Some(principal) => Ok(Client {
            principal: principal.clone(),
            client_id,
        }),
        None => Err(client(scheme, "wrong client secret")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "t:o+k%en s";

    fn table() -> TokenTable {
        TokenTable::new(Some(TOKEN), Vec::new()).unwrap()
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        h
    }

    fn form(id: Option<&str>, secret: Option<&str>) -> FormCredentials {
        FormCredentials {
            client_id: id.map(str::to_owned),
            client_secret: secret.map(str::to_owned),
        }
    }

    fn auth(h: &HeaderMap, f: &FormCredentials) -> Result<(), ClientAuthError> {
        authenticate(h, f, &table()).map(|c| assert_eq!(&*c.principal.name, "admin"))
    }

    #[test]
    fn form_decoding_follows_the_form_encoding() {
        assert_eq!(form_decode(b"a+b%3Ac%2b%zz%4"), b"a b:c+%zz%4");
        assert_eq!(form_decode(b"%E2%82%AC"), "€".as_bytes());
        assert_eq!(form_decode(b""), b"");
    }

    #[test]
    fn basic_credentials_are_form_decoded_and_raw_ones_still_work() {
        let none = form(None, None);
        assert_eq!(
            auth(&basic("my%3Aclient", "t%3Ao%2Bk%25en+s"), &none),
            Ok(())
        );
        assert_eq!(auth(&basic("any", TOKEN), &none), Ok(()));
        assert!(matches!(
            auth(&basic("any", "t%3Ao+k"), &none),
            Err(ClientAuthError::Client(Scheme::Basic, _))
        ));
        assert!(auth(&basic("no-colon", ""), &none).is_err());
    }

    #[test]
    fn client_secret_post_needs_both_fields() {
        let h = HeaderMap::new();
        assert_eq!(auth(&h, &form(Some("c"), Some(TOKEN))), Ok(()));
        assert!(matches!(
            auth(&h, &form(None, Some(TOKEN))),
            Err(ClientAuthError::Request(_))
        ));
        assert!(matches!(
            auth(&h, &form(Some("c"), None)),
            Err(ClientAuthError::Client(Scheme::Basic, _))
        ));
        assert!(matches!(
            auth(&h, &form(Some("c"), Some("wrong"))),
            Err(ClientAuthError::Client(Scheme::Basic, _))
        ));
    }

    #[test]
    fn two_methods_or_two_ids_are_an_invalid_request() {
        let both = auth(&basic("c", TOKEN), &form(Some("c"), Some(TOKEN)));
        assert!(matches!(both, Err(ClientAuthError::Request(_))));
        let other_id = auth(&basic("c", TOKEN), &form(Some("d"), None));
        assert!(matches!(other_id, Err(ClientAuthError::Request(_))));
        assert_eq!(
            auth(&basic("c%20d", TOKEN), &form(Some("c d"), None)),
            Ok(())
        );
        let mut bearer = HeaderMap::new();
        let v = HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
        bearer.insert(header::AUTHORIZATION, v);
        assert_eq!(auth(&bearer, &form(Some("free-form"), None)), Ok(()));
        assert!(matches!(
            auth(&bearer, &form(Some("c"), Some(TOKEN))),
            Err(ClientAuthError::Request(_))
        ));
    }

    #[test]
    fn without_an_admin_token_nobody_is_a_client() {
        let r = authenticate(
            &basic("c", TOKEN),
            &form(None, None),
            &TokenTable::default(),
        );
        assert!(matches!(r, Err(ClientAuthError::Client(Scheme::Basic, _))));
    }
}
