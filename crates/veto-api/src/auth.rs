//! Who a request comes from, and bearer-token parsing.
//!
//! Endpoints that need a role take an API token (see [`crate::tokens`]) as
//! `Authorization: Bearer <token>`, or as the password of HTTP Basic (any user
//! name), which is what many OAuth client libraries send to an RFC 7009
//! endpoint. No token, or one the node does not know, is 401; a known token
//! without the endpoint's role is 403. A request with more than one
//! `Authorization` header is refused everywhere.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::error::{code, ApiError};
use crate::state::AppState;
use crate::tokens::{Principal, Role};
use crate::view::Detail;

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code::UNAUTHORIZED, message)
}

/// Splits an `Authorization` value into its scheme and credentials. The scheme is
/// case-insensitive (RFC 9110 §11.1).
fn credentials<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Why a request carries no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerError {
    Missing,
    /// More than one `Authorization` header: which one a gateway or the
    /// upstream would act on is not ours to guess, so it is refused.
    Several,
    NotBearer,
    Empty,
}

impl BearerError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            BearerError::Missing => "no Authorization header",
            BearerError::Several => "more than one Authorization header",
            BearerError::NotBearer => "the Authorization header is not a Bearer token",
            BearerError::Empty => "the bearer token is empty",
        }
    }
}

/// The one `Authorization` header, if there is exactly one.
fn only_authorization(headers: &HeaderMap) -> Result<&HeaderValue, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next().ok_or(BearerError::Missing)?;
    if values.next().is_some() {
        return Err(BearerError::Several);
    }
    Ok(first)
}

/// The token of `Authorization: Bearer <token>`.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, BearerError> {
    let value = only_authorization(headers)?
        .to_str()
        .map_err(|_| BearerError::NotBearer)?;
    let token = credentials(value, "Bearer").ok_or(BearerError::NotBearer)?;
    if token.is_empty() {
        return Err(BearerError::Empty);
    }
    Ok(token)
}

/// The credential presented: a bearer token or a Basic password.
fn presented(headers: &HeaderMap) -> Result<Vec<u8>, ApiError> {
    let value = match only_authorization(headers) {
        Ok(value) => value,
        Err(BearerError::Several) => return Err(unauthorized(BearerError::Several.message())),
        Err(_) => {
            return Err(unauthorized(
                "this endpoint needs an API token as a Bearer token",
            ))
        }
    }
    .to_str()
    .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    if let Some(token) = credentials(value, "Bearer") {
        return Ok(token.as_bytes().to_vec());
    }
    if let Some(b64) = credentials(value, "Basic") {
        let decoded = STANDARD
            .decode(b64)
            .map_err(|_| unauthorized("the Basic credentials are not valid base64"))?;
        // user:password; the password is the token, the user is ignored.
        let colon = decoded.iter().position(|b| *b == b':').ok_or_else(|| {
            unauthorized("the Basic credentials must be user:password with the token as password")
        })?;
        return Ok(decoded[colon + 1..].to_vec());
    }
    Err(unauthorized(
        "the Authorization header must be `Bearer <token>`",
    ))
}

/// Who sent the request: the named token it carried. Extracting it fails
/// with 401 when the request carries no token this node accepts; what the
/// token may do is checked by [`Caller::require`].
#[derive(Clone, Debug)]
pub(crate) struct Caller(pub(crate) Principal);

impl Caller {
    /// The caller if it holds `role`, else 403 `forbidden`.
    pub(crate) fn require(self, role: Role) -> Result<Caller, ApiError> {
        if self.0.roles.grants(role) {
            Ok(self)
        } else {
            Err(forbidden(&self.0, &[role]))
        }
    }

    /// The caller if it holds one of `roles`, else 403 `forbidden`.
    pub(crate) fn require_any(self, roles: &[Role]) -> Result<Caller, ApiError> {
        if roles.iter().any(|r| self.0.roles.grants(*r)) {
            Ok(self)
        } else {
            Err(forbidden(&self.0, roles))
        }
    }

    /// Whether the caller holds `role`.
    pub(crate) fn has(&self, role: Role) -> bool {
        self.0.roles.grants(role)
    }

    /// The token's name.
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    /// The fields of a record the caller may see: all of them with `audit`,
    /// the enforcement fields with `read` alone.
    pub(crate) fn detail(&self) -> Detail {
        if self.has(Role::Audit) {
            Detail::Full
        } else {
            Detail::Enforcement
        }
    }
}

fn forbidden(who: &Principal, roles: &[Role]) -> ApiError {
    let needed: Vec<String> = roles.iter().map(|r| format!("`{r}`")).collect();
    ApiError::new(
        StatusCode::FORBIDDEN,
        code::FORBIDDEN,
        format!(
            "this endpoint needs the {} role; token {:?} has {}",
            needed.join(" or "),
            who.name,
            who.roles.describe()
        ),
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let table = state.tokens.current();
        if table.is_empty() {
            return Err(unauthorized(
                "this endpoint is disabled: this node accepts no API token",
            ));
        }
        let token = presented(&parts.headers)?;
        match table.lookup(&token) {
            Some(p) => Ok(Caller(p.clone())),
            None => Err(unauthorized("unknown API token")),
        }
    }
}

/// A caller holding the `admin` role: extracting it fails with 401 or 403.
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        Caller::from_request_parts(parts, state)
            .await?
            .require(Role::Admin)
            .map(|_| Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_trimmed() {
        assert_eq!(bearer(&headers("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(&headers("Basic abc")), Err(BearerError::NotBearer));
        assert_eq!(bearer(&headers("Bearer ")), Err(BearerError::Empty));
        assert_eq!(bearer(&HeaderMap::new()), Err(BearerError::Missing));
        let mut two = headers("Bearer abc");
        two.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer def"),
        );
        assert_eq!(bearer(&two), Err(BearerError::Several));
        assert!(presented(&two).is_err());
    }

    #[test]
    fn basic_password_is_the_credential() {
        let h = headers(&format!("Basic {}", STANDARD.encode("client:s3cret")));
        assert_eq!(presented(&h).unwrap(), b"s3cret");
        assert!(presented(&headers("Basic !!!")).is_err());
        assert!(presented(&headers("Token x")).is_err());
    }
}
