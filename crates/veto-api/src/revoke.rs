//! `POST /v1/revocations` and `POST /v1/revocations/batch`: turning a request
//! into a [`Revocation`] with its defaults, and storing it.
//!
//! Defaults and rules:
//! - `token` scope takes `jti` (with an optional `iss`) or `token` (an opaque
//!   token, kept only as its SHA-256); `session` takes `sid`, `subject` `sub`,
//!   `client` `client_id`, `issuer` `iss`, `key` `kid`. A key that does not
//!   belong to the scope is refused rather than ignored, so that a typo never
//!   revokes something other than what was meant.
//! - Bulk scopes (`subject`, `client`, `issuer`) take `before`. Its default is
//!   the node's hybrid clock plus the maximum clock offset, plus one second
//!   (`iat` is whole seconds): every token issued before the revocation is
//!   acknowledged is covered, as long as the issuers' clocks are within the
//!   maximum offset of this node's. A `before` later than that default is
//!   refused: a cutoff in the future would revoke tokens not yet issued.
//! - Their `expires_at` defaults to `before` plus the maximum token lifetime
//!   (but not earlier than now). Other scopes default `expires_at` to now plus
//!   the maximum token lifetime. An explicit `expires_at` in the past, or more
//!   than [`MAX_EXPIRY_HORIZON`] ahead, is refused: such a record would never
//!   be collected.
//! - `reason` defaults to `""` and `actor` to `"admin"`: there is one admin
//!   token, so the node cannot tell admins apart; callers that can should say
//!   who they are in `actor`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer};
use veto_core::jwt::MAX_TOKEN_BYTES;
use veto_core::record::check_note;
use veto_core::{Record, Revocation, ScopeKind, Target};

use crate::auth::Admin;
pub(crate) use crate::cutoffs::{Cutoffs, MAX_EXPIRY_HORIZON};
use crate::error::{code, ApiError};
use crate::limits::{parse_array, parse_json, Body, MAX_BATCH_ITEMS};
use crate::state::AppState;
use crate::view::{RecordList, RecordView};

/// The actor recorded when a request names none.
pub const DEFAULT_ACTOR: &str = "admin";

/// The valid scopes, as listed in error messages.
const SCOPE_LIST: &str = "token, session, subject, client, issuer, key";

/// One revocation as a client asks for it.
#[derive(Deserialize, Debug, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    pub(crate) scope: String,
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) jti: Option<String>,
    #[serde(default)]
    pub(crate) sid: Option<String>,
    #[serde(default)]
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default, deserialize_with = "de_before")]
    pub(crate) before: Option<u64>,
    #[serde(default, deserialize_with = "de_expires_at")]
    pub(crate) expires_at: Option<u64>,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) actor: Option<String>,
}

/// Unix seconds as a JSON integer, with an error that names the field.
fn unix_secs<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Option<u64>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64()),
        other => Err(serde::de::Error::custom(format!(
            "`{field}` must be Unix seconds as a non-negative integer, not {other}"
        ))),
    }
}

fn de_before<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unix_secs(d, "before")
}

fn de_expires_at<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unix_secs(d, "expires_at")
}

fn take(field: Option<String>, name: &str, scope: ScopeKind) -> Result<String, String> {
    field.ok_or_else(|| format!("scope `{scope}` needs `{name}`"))
}

impl RevokeRequest {
    /// The key fields that were given, by name.
    fn given_keys(&self) -> [(&'static str, bool); 7] {
        [
            ("iss", self.iss.is_some()),
            ("jti", self.jti.is_some()),
            ("token", self.token.is_some()),
            ("sid", self.sid.is_some()),
            ("sub", self.sub.is_some()),
            ("client_id", self.client_id.is_some()),
            ("kid", self.kid.is_some()),
        ]
    }

    /// Checks the request and fills in its defaults. The error is the message
    /// for a 400.
    pub(crate) fn into_revocation(self, cutoffs: &Cutoffs) -> Result<Revocation, String> {
        let (now, max_lifetime) = (cutoffs.now, cutoffs.max_lifetime);
        let scope = ScopeKind::parse(&self.scope).ok_or_else(|| {
            format!(
                "unknown scope {:?}; valid scopes are {SCOPE_LIST}",
                self.scope
            )
        })?;
        let allowed: &[&str] = match scope {
            ScopeKind::Token => &["iss", "jti", "token"],
            ScopeKind::Session => &["iss", "sid"],
            ScopeKind::Subject => &["iss", "sub"],
            ScopeKind::Client => &["iss", "client_id"],
            ScopeKind::Issuer => &["iss"],
            ScopeKind::Key => &["iss", "kid"],
        };
        if let Some((name, _)) = self
            .given_keys()
            .into_iter()
            .find(|(name, given)| *given && !allowed.contains(name))
        {
            return Err(format!("field `{name}` does not apply to scope `{scope}`"));
        }
        if self.before.is_some() && !scope.is_bulk() {
            return Err(format!(
                "field `before` applies only to the bulk scopes subject, client and issuer, not `{scope}`"
            ));
        }
        let latest = cutoffs.latest_before();
        let before = match self.before {
            Some(b) if b > latest => {
                return Err(format!(
                    "`before` {b} is in the future (the latest accepted is {latest}: now plus the \
                     maximum clock offset); a cutoff in the future would revoke tokens not yet issued"
                ))
            }
            Some(b) => b,
            None => latest,
        };
        let iss = self.iss;
        let target = match scope {
            ScopeKind::Token => match (self.jti, self.token) {
                (Some(jti), None) => Target::Token { iss, jti },
                (None, Some(token)) => {
                    if iss.is_some() {
                        return Err(
                            "field `iss` does not apply to an opaque `token`: it is matched by its hash alone"
                                .into(),
                        );
                    }
                    if token.is_empty() {
                        return Err("field `token` must not be empty".into());
                    }
                    if token.len() > MAX_TOKEN_BYTES {
                        return Err(format!(
                            "field `token` is {} bytes; the limit is {MAX_TOKEN_BYTES}",
                            token.len()
                        ));
                    }
                    Target::opaque_token(&token)
                }
                (Some(_), Some(_)) => {
                    return Err("scope `token` takes either `jti` or `token`, not both".into())
                }
                (None, None) => {
                    return Err(
                        "scope `token` needs `jti` (with an optional `iss`) or `token`".into(),
                    )
                }
            },
            ScopeKind::Session => Target::Session {
                iss,
                sid: take(self.sid, "sid", scope)?,
            },
            ScopeKind::Subject => Target::Subject {
                iss,
                sub: take(self.sub, "sub", scope)?,
                before,
            },
            ScopeKind::Client => Target::Client {
                iss,
                client_id: take(self.client_id, "client_id", scope)?,
                before,
            },
            ScopeKind::Issuer => Target::Issuer {
                iss: take(iss, "iss", scope)?,
                before,
            },
            ScopeKind::Key => Target::Key {
                iss,
                kid: take(self.kid, "kid", scope)?,
            },
        };
        target.validate().map_err(|e| e.to_string())?;
        let expires_at = match self.expires_at {
            Some(t) if t < now => {
                return Err(format!(
                    "`expires_at` {t} is in the past (now is {now}); a record that has already expired revokes nothing"
                ))
            }
            Some(t) if t > cutoffs.latest_expiry() => {
                return Err(format!(
                    "`expires_at` {t} is more than {} days ahead (the latest accepted is {}); \
                     such a record would never be collected",
                    MAX_EXPIRY_HORIZON / 86_400,
                    cutoffs.latest_expiry()
                ))
            }
            Some(t) => t,
            None if scope.is_bulk() => before.saturating_add(max_lifetime).max(now),
            None => now.saturating_add(max_lifetime),
        };
        let reason = self.reason.unwrap_or_default();
        check_note("reason", &reason).map_err(|e| e.to_string())?;
        let actor = self.actor.unwrap_or_else(|| DEFAULT_ACTOR.to_owned());
        check_note("actor", &actor).map_err(|e| e.to_string())?;
        Ok(Revocation {
            target,
            expires_at,
            reason,
            actor,
        })
    }
}

/// Stores a batch and counts it; the records come back in request order.
pub(crate) async fn store(
    state: &AppState,
    batch: Vec<Revocation>,
) -> Result<Vec<Record>, ApiError> {
    let n = batch.len();
    let records = state.backend.revoke(batch).await?;
    if records.len() != n {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            format!("the node acknowledged {} of {n} revocations", records.len()),
        ));
    }
    for r in &records {
        metrics::counter!("veto_revocations_total", "scope" => r.target.kind().as_str())
            .increment(1);
    }
    Ok(records)
}

/// `POST /v1/revocations`: 201 with the stored record.
pub(crate) async fn revoke_one(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let req: RevokeRequest = parse_json(&body)?;
    let rev = req
        .into_revocation(&state.cutoffs())
        .map_err(ApiError::invalid)?;
    let records = store(&state, vec![rev]).await?;
    let view = records.first().map(RecordView::new);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `POST /v1/revocations/batch`: 201 with `{"records": [...]}` in request order.
/// Any invalid item rejects the whole batch, naming its index; nothing is stored.
pub(crate) async fn revoke_batch(
    _: Admin,
    State(state): State<AppState>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let reqs: Vec<RevokeRequest> = parse_array(&body, MAX_BATCH_ITEMS)?;
    let cutoffs = state.cutoffs();
    let batch = reqs
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.into_revocation(&cutoffs)
                .map_err(|m| ApiError::invalid(format!("item {i}: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let records = if batch.is_empty() {
        Vec::new()
    } else {
        store(&state, batch).await?
    };
    Ok((StatusCode::CREATED, Json(RecordList::new(&records))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const DAY: u64 = 86_400;

    const CUTOFFS: Cutoffs = Cutoffs {
        now: NOW,
        max_lifetime: DAY,
        max_offset: 1,
    };

    fn req(json: &str) -> Result<Revocation, String> {
        serde_json::from_str::<RevokeRequest>(json)
            .map_err(|e| e.to_string())?
            .into_revocation(&CUTOFFS)
    }

    #[test]
    fn defaults_follow_the_scope() {
        let r = req(r#"{"scope":"token","iss":"i","jti":"j"}"#).unwrap();
        assert_eq!(r.expires_at, NOW + DAY);
        assert_eq!(r.actor, DEFAULT_ACTOR);
        assert_eq!(r.reason, "");

        let r = req(r#"{"scope":"subject","sub":"alice","before":1600000000}"#).unwrap();
        assert_eq!(r.target.before(), Some(1_600_000_000));
        // before + lifetime is long past: the record still lives until now.
        assert_eq!(r.expires_at, NOW);

        // The default cutoff covers every token issued by a clock up to the
        // maximum offset ahead, in the second of the revocation too.
        let r = req(r#"{"scope":"issuer","iss":"i"}"#).unwrap();
        assert_eq!(r.target.before(), Some(NOW + 2));
        assert_eq!(r.expires_at, NOW + 2 + DAY);

        let r = req(r#"{"scope":"token","token":"opaque"}"#).unwrap();
        assert_eq!(r.target, Target::opaque_token("opaque"));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let e = req(r#"{"scope":"user","sub":"a"}"#).unwrap_err();
        assert!(e.contains(SCOPE_LIST), "{e}");
        let e = req(r#"{"scope":"session","jti":"a"}"#).unwrap_err();
        assert!(e.contains("`jti`"), "{e}");
        let e = req(r#"{"scope":"client"}"#).unwrap_err();
        assert!(e.contains("needs `client_id`"), "{e}");
        let e = req(r#"{"scope":"key","kid":"k","before":5}"#).unwrap_err();
        assert!(e.contains("`before`"), "{e}");
        let e = req(r#"{"scope":"token","jti":"j","expires_at":5}"#).unwrap_err();
        assert!(e.contains("in the past"), "{e}");
        let e = req(r#"{"scope":"token","token":"t","iss":"i"}"#).unwrap_err();
        assert!(e.contains("`iss`"), "{e}");
        let e = req(r#"{"scope":"token","jti":"j","token":"t"}"#).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = req(r#"{"scope":"token","jti":""}"#).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = req(r#"{"scope":"subject","sub":"a","before":1700000003}"#).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
        assert!(req(r#"{"scope":"subject","sub":"a","before":1700000002}"#).is_ok());
        let e = req(r#"{"scope":"subject","sub":"a","before":18446744073709551615}"#).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
        let e =
            req(r#"{"scope":"token","jti":"j","expires_at":18446744073709551615}"#).unwrap_err();
        assert!(e.contains("never be collected"), "{e}");
        let far = NOW + MAX_EXPIRY_HORIZON;
        assert!(req(&format!(
            r#"{{"scope":"token","jti":"j","expires_at":{far}}}"#
        ))
        .is_ok());
        let e = req(r#"{"scope":"subject","sub":"a","before":"yesterday"}"#).unwrap_err();
        assert!(e.contains("`before` must be Unix seconds"), "{e}");
        let long = "r".repeat(513);
        let e = req(&format!(r#"{{"scope":"key","kid":"k","reason":"{long}"}}"#)).unwrap_err();
        assert!(e.contains("reason"), "{e}");
    }
}
