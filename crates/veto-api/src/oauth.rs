//! `POST /oauth2/revoke`: OAuth 2.0 Token Revocation (RFC 7009).
//!
//! The form fields are `token` (required) and `token_type_hint`
//! (`access_token` or `refresh_token`; any other hint is 400
//! `unsupported_token_type`). Fields it does not know are ignored, as RFC 6749
//! asks.
//!
//! The client authenticates as RFC 6749 §2.3.1 describes, with an API token
//! holding the `revoke` role (or the admin token) as its client secret and any
//! client id, which the record keeps as `on_behalf_of` ([`OAUTH_ACTOR`] when
//! there is none); its `actor` is the token's name. The methods: HTTP Basic (id and secret each
//! form-url-encoded), the form fields `client_id` and `client_secret`, or the
//! admin token as a Bearer token. See [`client_auth`] for the details; a
//! request that uses two methods at once is 400 `invalid_request`, and a
//! failed authentication 401 `invalid_client` with a `WWW-Authenticate`
//! challenge of the scheme the client used.
//!
//! A JWT carrying both `iss` and `jti` is revoked at token scope by (iss, jti),
//! with `expires_at` its `exp` (or now plus the maximum token lifetime). Every
//! other token (opaque, undecodable, or a JWT without `iss` or `jti`) is revoked
//! by its SHA-256 with `expires_at` now plus the maximum token lifetime. A `jti`
//! without an `iss` is not used: it would revoke that jti at every issuer. Every
//! well-formed request answers 200 with an empty body, so nothing about the token
//! leaks. Error bodies carry RFC 6749's `error_description` beside `message`.
//!
//! A space in `token` is read as `+`, as on `/v1/check`: no bearer token holds
//! a space, but an unescaped `+` arrives as one.
//!
//! An opaque refresh token may outlive the maximum token lifetime; operators
//! who revoke such tokens here should set that lifetime to cover them.

mod client_auth;

use std::borrow::Cow;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use veto_core::{jwt, Revocation, Target};

use crate::check::plus_for_space;
use crate::error::{code, count_error};
use crate::limits::Body;
use crate::receipt::parse_wait;
use crate::revoke::store;
use crate::state::AppState;
use crate::tokens::Role;

/// What a revocation made through this endpoint records as `on_behalf_of`
/// when the client gives no client id (its `actor` is the token's name).
pub const OAUTH_ACTOR: &str = "oauth2";

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OAuthError<'a> {
    error: &'a str,
    message: &'a str,
    error_description: &'a str,
}

fn oauth_error(status: StatusCode, error: &str, message: &str) -> Response {
    count_error(status);
    let body = serde_json::to_vec(&OAuthError {
        error,
        message,
        error_description: message,
    })
    .unwrap_or_default();
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // RFC 6749 §5.1: error answers must not be cached either.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The revocation for a token handed to the endpoint.
pub(crate) fn revocation_for(
    token: &str,
    hint: Option<&str>,
    now: u64,
    max_lifetime: u64,
) -> Revocation {
    let by_jti = if jwt::looks_like_jwt(token) {
        jwt::decode(token).ok().and_then(|c| {
            let target = Target::Token {
                iss: Some(c.iss?),
                jti: c.jti?,
            };
            target.validate().ok()?;
            Some((target, c.exp))
        })
    } else {
        None
    };
    let default_expiry = now.saturating_add(max_lifetime);
    let (target, expires_at) = match by_jti {
        // An already expired token is still recorded until its own expiry has
        // passed the node's grace period, so a gateway whose clock runs behind
        // does not accept it meanwhile.
        // A token's `exp` beyond the horizon is held to it, so that the record
        // is collected some day (RFC 7009 has no way to refuse it).
        Some((t, exp)) => (
            t,
            exp.unwrap_or(default_expiry)
                .min(now.saturating_add(veto_core::request::MAX_EXPIRY_HORIZON)),
        ),
        None => (Target::opaque_token(token), default_expiry),
    };
    Revocation {
        target,
        expires_at,
        reason: format!("revoked through RFC 7009 ({})", hint.unwrap_or("no hint")),
        actor: OAUTH_ACTOR.to_owned(),
    }
}

/// The form fields of a revocation request.
#[derive(Default)]
struct Form {
    token: Option<String>,
    hint: Option<String>,
    credentials: client_auth::FormCredentials,
    /// The first field given more than once, if any.
    repeated: Option<String>,
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        let mut form = Form::default();
        for (name, value) in form_urlencoded::parse(body) {
            let slot = match &*name {
                "token" => &mut form.token,
                "token_type_hint" => &mut form.hint,
                "client_id" => &mut form.credentials.client_id,
                "client_secret" => &mut form.credentials.client_secret,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() && form.repeated.is_none() {
                form.repeated = Some(name.into_owned());
            }
        }
        form
    }
}

fn repeated(name: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        code::INVALID_REQUEST,
        &format!("form field `{name}` is given more than once"),
    )
}

/// `POST /oauth2/revoke`.
pub(crate) async fn revoke(
    headers: HeaderMap,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Body(body): Body,
) -> Response {
    let form = Form::parse(&body);
    // RFC 6749 §5.2: repeated credentials are `invalid_request`, whoever sends
    // them; any other form error is only reported to an authenticated client.
    if let Some(name) = form
        .repeated
        .as_deref()
        .filter(|n| matches!(*n, "client_id" | "client_secret"))
    {
        return repeated(name);
    }
    let client =
        match client_auth::authenticate(&headers, &form.credentials, &state.tokens.current()) {
            Ok(client) => client,
            Err(client_auth::ClientAuthError::Request(message)) => {
                return oauth_error(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, &message)
            }
            Err(client_auth::ClientAuthError::Client(scheme, message)) => {
                let mut resp = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &message);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(scheme.challenge()),
                );
                return resp;
            }
        };
    if !client.principal.roles.grants(Role::Revoke) {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            &format!(
                "token {:?} may not revoke: it has the roles {}",
                client.principal.name,
                client.principal.roles.describe()
            ),
        );
    }
    let on_behalf_of = client.client_id.unwrap_or_else(|| OAUTH_ACTOR.to_owned());
    if let Err(e) = veto_core::record::check_note("client_id", &on_behalf_of) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            &e.to_string(),
        );
    }
    if let Some(name) = &form.repeated {
        return repeated(name);
    }
    let Form { token, hint, .. } = form;
    // As on `/v1/check`: an unescaped `+` arrives as a space, which no bearer
    // token holds, and the hash must match what the gateway will look up.
    let Some(token) = token
        .filter(|t| !t.is_empty())
        .map(|t| plus_for_space(Cow::Owned(t)))
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "the form field `token` is required",
        );
    };
    let hint = hint.as_deref();
    if let Some(h) = hint.filter(|h| !matches!(*h, "access_token" | "refresh_token")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            code::UNSUPPORTED_TOKEN_TYPE,
            &format!(
                "unsupported token_type_hint {h:?}; supported are access_token and refresh_token"
            ),
        );
    }
    // `?wait=` is veto's own: RFC 7009 clients never send it.
    let wait = match parse_wait(query.as_deref()) {
        Ok(wait) => wait,
        Err(e) => return oauth_error(e.status, code::INVALID_REQUEST, &e.message),
    };
    let mut rev = revocation_for(&token, hint, state.now(), state.max_lifetime);
    rev.actor = veto_core::actor::compose(&client.principal.name, Some(&on_behalf_of));
    if let Some(w) = &wait {
        if let Err(e) = w.check_regions(&state) {
            return oauth_error(e.status, code::INVALID_REQUEST, &e.message);
        }
    }
    let records = match store(&state, vec![rev]).await {
        Ok(records) => records,
        Err(e) => return oauth_error(e.status, e.code, &e.message),
    };
    let mut resp = match wait {
        None => StatusCode::OK.into_response(),
        Some(w) => {
            let ids: Vec<_> = records.iter().map(|r| r.id).collect();
            let (status, receipt) = w.run(&state, &ids, StatusCode::OK).await;
            (status, Json(serde_json::json!({ "receipt": receipt }))).into_response()
        }
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_jwt_with_iss_and_jti_is_revoked_by_them_until_its_exp() {
        let t = jwt::encode_unsigned(
            &json!({"alg": "none"}),
            &json!({"iss": "https://idp", "jti": "j1", "exp": 1_700_000_500u64}),
        );
        let r = revocation_for(&t, Some("access_token"), 1_700_000_000, 3600);
        assert_eq!(
            r.target,
            Target::Token {
                iss: Some("https://idp".into()),
                jti: "j1".into()
            }
        );
        assert_eq!(r.expires_at, 1_700_000_500);
        assert_eq!(r.actor, OAUTH_ACTOR);
    }

    #[test]
    fn other_tokens_are_revoked_by_hash() {
        let no_iss = jwt::encode_unsigned(&json!({}), &json!({"jti": "j1"}));
        for t in [no_iss.as_str(), "a.b.c", "opaque-token"] {
            let r = revocation_for(t, None, 100, 50);
            assert_eq!(r.target, Target::opaque_token(t));
            assert_eq!(r.expires_at, 150);
        }
    }
}
