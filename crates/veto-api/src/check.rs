//! `GET /v1/check` and `POST /v1/check`: lookups.
//!
//! A lookup carries claims (`iss`, `sub`, `jti`, `sid`, `client_id`, `kid`,
//! `iat`) or a `token`, not both. A token with exactly two dots is a JWT: its
//! header and claims are decoded (the signature is not checked; that is the
//! gateway's job) and the SHA-256 of the whole string is looked up too, so a JWT
//! revoked as an opaque token is found. Any other token is opaque and looked up
//! by its SHA-256 alone.
//!
//! Unknown or repeated query parameters are refused: a misspelt `jit=` answered
//! with `{"revoked": false}` would let a revoked token through. An empty value
//! counts as absent, as a gateway templating a missing claim sends it: an empty
//! `iss` then matches records of every issuer and an empty `iat` lets every
//! bulk cutoff apply, which fails closed. In a query `token`, a space is read as
//! `+`: a bearer token never holds a space (RFC 6750 `b64token`), but an
//! unescaped `+` arrives as one.
//!
//! With a staleness bound (configured, or `?max_staleness=SECS` in the query,
//! which tightens it; on `POST` the one query parameter taken), an answer
//! given while an origin is staler than the bound carries `"stale":
//! {"<name>": secs|null}`: beside `revoked` for `GET`, beside `results` for
//! `POST`. `revoked` never changes (see [`crate::stale`]).
//!
//! This is the hot path. The query is parsed in place (no allocation unless a
//! value is percent-encoded), the not-revoked answer is a static body, and the
//! metrics are pre-registered handles. Without a bound the watermarks are
//! never read.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use sha2::{Digest as _, Sha256};
use veto_core::jwt::{self, JwtError};
use veto_core::Check;

use crate::backend::{Backend, Revoked};
use crate::error::{code, ApiError};
use crate::limits::{parse_array, Body, MAX_BATCH_ITEMS};
use crate::stale::{self, Stale};
use crate::state::{AppState, Outcome};

/// One lookup as a client sends it, borrowing from the query or body.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CheckRequest)]
pub(crate) struct CheckInput<'a> {
    #[serde(default, borrow)]
    iss: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sub: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    jti: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    client_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "de_iat")]
    iat: Option<u64>,
    #[serde(default, borrow)]
    token: Option<Cow<'a, str>>,
}

fn de_iat<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64()),
        other => Err(serde::de::Error::custom(format!(
            "`iat` must be Unix seconds as a non-negative integer, not {other}"
        ))),
    }
}

const NOTHING_TO_CHECK: &str =
    "nothing to check: give `token`, or at least one of iss, sub, jti, sid, client_id, kid";

fn set<'a>(
    slot: &mut Option<Cow<'a, str>>,
    name: &str,
    value: Cow<'a, str>,
) -> Result<(), ApiError> {
    if slot.replace(value).is_some() {
        return Err(ApiError::invalid(format!(
            "query parameter `{name}` is given twice"
        )));
    }
    Ok(())
}

/// A value that is given and not empty.
fn present<'s>(v: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Undoes form decoding's `+` to space for a bearer token, which never holds a
/// space.
pub(crate) fn plus_for_space(token: Cow<'_, str>) -> Cow<'_, str> {
    if token.contains(' ') {
        Cow::Owned(token.replace(' ', "+"))
    } else {
        token
    }
}

impl<'a> CheckInput<'a> {
    /// Parses `GET /v1/check`'s query string: the lookup, and the
    /// `max_staleness` it asks for.
    pub(crate) fn from_query(
        query: &'a str,
    ) -> Result<(CheckInput<'a>, Option<Duration>), ApiError> {
        let mut input = CheckInput::default();
        let mut max_staleness = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "max_staleness" => stale::set_max_staleness(&mut max_staleness, &value)?,
                "iss" => set(&mut input.iss, "iss", value)?,
                "sub" => set(&mut input.sub, "sub", value)?,
                "jti" => set(&mut input.jti, "jti", value)?,
                "sid" => set(&mut input.sid, "sid", value)?,
                "client_id" => set(&mut input.client_id, "client_id", value)?,
                "kid" => set(&mut input.kid, "kid", value)?,
                "token" => set(&mut input.token, "token", plus_for_space(value))?,
                "iat" if value.is_empty() => {}
                "iat" => {
                    let iat = value.parse().map_err(|_| {
                        ApiError::invalid(format!(
                            "`iat` must be Unix seconds as a non-negative integer, not {value:?}"
                        ))
                    })?;
                    if input.iat.replace(iat).is_some() {
                        return Err(ApiError::invalid("query parameter `iat` is given twice"));
                    }
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "unknown query parameter {other:?}; known are iss, sub, jti, sid, client_id, kid, iat, token, max_staleness"
                    )))
                }
            }
        }
        Ok((input, max_staleness))
    }

    fn has_claims(&self) -> bool {
        [
            &self.iss,
            &self.sub,
            &self.jti,
            &self.sid,
            &self.client_id,
            &self.kid,
        ]
        .into_iter()
        .any(|c| present(c).is_some())
    }

    /// Runs the lookup against the backend.
    pub(crate) fn lookup(&self, backend: &dyn Backend) -> Result<Option<Revoked>, ApiError> {
        if let Some(token) = present(&self.token) {
            if self.has_claims() || self.iat.is_some() {
                return Err(ApiError::invalid(
                    "give either `token` or claims, not both: a token's claims are read from it",
                ));
            }
            return check_token(backend, token).map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    code::INVALID_TOKEN,
                    format!("malformed JWT: {e}"),
                )
            });
        }
        if !self.has_claims() {
            return Err(ApiError::invalid(NOTHING_TO_CHECK));
        }
        Ok(backend.check(&Check {
            iss: present(&self.iss),
            sub: present(&self.sub),
            jti: present(&self.jti),
            sid: present(&self.sid),
            client_id: present(&self.client_id),
            kid: present(&self.kid),
            iat: self.iat,
            token_sha256: None,
        }))
    }
}

/// Looks a raw bearer token up: as a JWT (claims plus the hash of the whole
/// string) when it has two dots, else by its hash alone.
pub(crate) fn check_token(backend: &dyn Backend, token: &str) -> Result<Option<Revoked>, JwtError> {
    if jwt::looks_like_jwt(token) {
        let mut buf = Vec::new();
        let claims = jwt::decode_in(token, &mut buf)?;
        Ok(backend.check(&Check {
            token_sha256: Some(Sha256::digest(token.as_bytes()).into()),
            ..claims.as_check()
        }))
    } else {
        Ok(backend.check(&Check {
            token_sha256: Some(Sha256::digest(token.as_bytes()).into()),
            ..Check::default()
        }))
    }
}

pub(crate) use veto_core::check::{CheckAnswer as Answer, CheckResults as Results};

/// The answer for a lookup's hit, borrowing from it.
fn answer_of(hit: Option<&Revoked>) -> Answer<'_> {
    match hit {
        Some(h) => Answer::revoked(h.scope, h.id.as_str(), h.reason.as_str(), h.revoked_at),
        None => Answer::default(),
    }
}

const NOT_REVOKED: &[u8] = br#"{"revoked":false}"#;

fn json_response(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// An answer with the origins it was given while stale.
#[derive(serde::Serialize)]
struct WithStale<'a, T> {
    #[serde(flatten)]
    answer: T,
    stale: &'a Stale,
}

fn answer(hit: Option<&Revoked>, stale: Option<&Stale>) -> Response {
    let body = match (hit, stale) {
        (None, None) => return json_response(Bytes::from_static(NOT_REVOKED)),
        (_, None) => serde_json::to_vec(&answer_of(hit)),
        (_, Some(stale)) => serde_json::to_vec(&WithStale {
            answer: answer_of(hit),
            stale,
        }),
    };
    match body {
        Ok(v) => json_response(Bytes::from(v)),
        // Serialising plain strings and numbers cannot fail; if it ever did,
        // answering "revoked" without details is the safe side.
        Err(_) => json_response(Bytes::from_static(br#"{"revoked":true}"#)),
    }
}

/// The origins staler than the bound for this request, counted `n` times
/// in `veto_stale_decisions_total{endpoint="check"}`.
fn stale_for(state: &AppState, max_staleness: Option<Duration>, n: u64) -> Option<Stale> {
    let (stale, policy) = stale::judge(state.backend.as_ref(), state.max_staleness, max_staleness)?;
    state.check_stale.count(policy, n);
    Some(stale)
}

/// `GET /v1/check`.
pub(crate) async fn check_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    check_query(&state, query.as_deref())
}

/// The answer to `GET /v1/check` with this query (also served by
/// [`crate::HotRoutes`]).
pub(crate) fn check_query(state: &AppState, query: Option<&str>) -> Response {
    let start = Instant::now();
    let result = CheckInput::from_query(query.unwrap_or("")).and_then(|(input, max_staleness)| {
        input
            .lookup(state.backend.as_ref())
            .map(|hit| (hit, max_staleness))
    });
    let m = &state.check_metrics;
    match result {
        Ok((hit, max_staleness)) => {
            let outcome = if hit.is_some() {
                Outcome::Revoked
            } else {
                Outcome::Clean
            };
            let stale = stale_for(state, max_staleness, 1);
            m.record(outcome, start);
            answer(hit.as_ref(), stale.as_ref())
        }
        Err(e) => {
            m.record(Outcome::Error, start);
            e.into_response()
        }
    }
}

/// `max_staleness`, the one query parameter of `POST /v1/check`.
fn batch_query(query: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let mut max_staleness = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "max_staleness" => stale::set_max_staleness(&mut max_staleness, &value)?,
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {other:?}; the lookups go in the body, and the query takes only max_staleness"
                )))
            }
        }
    }
    Ok(max_staleness)
}

/// The answer to `POST /v1/check`, with the origins it was given while
/// stale.
#[derive(serde::Serialize)]
struct BatchAnswer<'a> {
    #[serde(flatten)]
    results: Results<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<Stale>,
}

/// `POST /v1/check`: a JSON array of lookups, answered `{"results": [...]}` in
/// order. An invalid item rejects the whole batch with its index.
pub(crate) async fn check_batch(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let m = &state.batch_metrics;
    let max_staleness = batch_query(query.as_deref()).inspect_err(|_| {
        m.record(Outcome::Error, start);
    })?;
    let inputs: Vec<CheckInput<'_>> = parse_array(&body, MAX_BATCH_ITEMS).inspect_err(|_| {
        m.record(Outcome::Error, start);
    })?;
    let hits = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            input.lookup(state.backend.as_ref()).map_err(|mut e| {
                e.message = format!("item {i}: {}", e.message);
                e
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .inspect_err(|_| m.record(Outcome::Error, start))?;
    let revoked = hits.iter().filter(|h| h.is_some()).count() as u64;
    m.count(Outcome::Revoked, revoked);
    m.count(Outcome::Clean, hits.len() as u64 - revoked);
    // The watermarks are read once for the batch.
    let stale = stale_for(&state, max_staleness, hits.len() as u64);
    m.record_duration(start);
    let answer = BatchAnswer {
        results: Results {
            results: hits.iter().map(|h| answer_of(h.as_ref())).collect(),
        },
        stale,
    };
    let body = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::invalid(format!("cannot encode the answer: {e}")))?;
    Ok(json_response(Bytes::from(body)))
}
