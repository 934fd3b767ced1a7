//! From the events of a verified SET to revocations.
//!
//! | event type | subject | revocation |
//! |---|---|---|
//! | CAEP `session-revoked` | a session (`opaque` id, or `complex` with `session`) | session scope |
//! | CAEP `session-revoked` | a user (`iss_sub`, `email`, `complex` without `session`) | subject cutoff at the event time |
//! | CAEP `credential-change`, `change_type` `revoke` or `delete` | a user | subject cutoff at the event time |
//! | CAEP `credential-change`, other change types | any | nothing (accepted) |
//! | OAuth `token-revoked` | `jwt_id` | token scope by (iss, jti) |
//! | OAuth `token-revoked` | `opaque` (the token) or `oauth_token` | token scope by the token's SHA-256 |
//! | OAuth `tokens-revoked` | a user | subject cutoff at the event time |
//! | OAuth `tokens-revoked` | `oauth_client` | client cutoff at the event time |
//! | any other event type | any | nothing (accepted) |
//!
//! A user given as `opaque` or `email` carries no issuer, so its records match
//! tokens of every issuer (as a revocation without `iss` does).
//!
//! The subject is the event's own `subject` (CAEP and OAuth drafts) or else the
//! SET's `sub_id` (SSF 1.0). The event time is the event's `event_timestamp`,
//! else the SET's `toe`, else its `iat`; it is never taken as later than
//! [`MAX_FUTURE_SKEW`] past the receiver's clock, so a transmitter whose clock
//! runs far ahead cannot lock a user out for long.

use serde_json::{Map, Value};
use veto_core::record::MAX_NOTE_BYTES;
use veto_core::Revocation;

use super::subject::Subject;
use super::verify::{numeric_date, SetClaims};
use super::{SetError, SetErrorCode};
use veto_core::request::RevokeRequest;

/// CAEP: every session of the subject is revoked.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP: a credential of the subject was created, revoked, updated or deleted.
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// OAuth event types: one token was revoked.
pub const TOKEN_REVOKED: &str =
    "https://schemas.openid.net/secevent/oauth/event-type/token-revoked";
/// OAuth event types: every token of the subject was revoked.
pub const TOKENS_REVOKED: &str =
    "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked";

/// How far past the receiver's clock an event time is believed, in seconds.
pub const MAX_FUTURE_SKEW: u64 = 300;

fn invalid(event: &str, msg: impl std::fmt::Display) -> SetError {
    SetError::new(
        SetErrorCode::InvalidRequest,
        format!("event {event}: {msg}"),
    )
}

/// `reason_admin` is a map of language tags to text in CAEP 1.0 and a plain
/// string in earlier drafts. English is preferred, else the first entry.
fn reason_admin(payload: &Map<String, Value>) -> Option<&str> {
    match payload.get("reason_admin")? {
        Value::String(s) => Some(s),
        Value::Object(m) => m
            .get("en")
            .and_then(Value::as_str)
            .or_else(|| m.values().find_map(Value::as_str)),
        _ => None,
    }
}

/// The event type and the admin's reason, cut to fit a record's note.
fn reason(event: &str, payload: &Map<String, Value>) -> String {
    let mut r = event.to_owned();
    if let Some(text) = reason_admin(payload)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        r.push_str(": ");
        r.push_str(text);
    }
    if r.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES;
        while !r.is_char_boundary(end) {
            end -= 1;
        }
        r.truncate(end);
    }
    r
}

/// What one SET asks for.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) revocations: Vec<Revocation>,
    /// Event types that were accepted without storing anything.
    pub(crate) ignored: Vec<String>,
}

/// Maps every event of a SET. Any event veto acts on but cannot map fails the
/// whole SET, so that nothing is half-applied.
pub(crate) fn plan(
    set: &SetClaims,
    actor: &str,
    now: u64,
    max_lifetime: u64,
) -> Result<Plan, SetError> {
    let mut out = Plan::default();
    for (event, payload) in &set.events {
        let Value::Object(payload) = payload else {
            return Err(invalid(event, "the event payload is not a JSON object"));
        };
        let time = payload
            .get("event_timestamp")
            .and_then(numeric_date)
            .or(set.toe)
            .unwrap_or(set.iat)
            .min(now.saturating_add(MAX_FUTURE_SKEW));
        let request = match event.as_str() {
            SESSION_REVOKED | CREDENTIAL_CHANGE | TOKEN_REVOKED | TOKENS_REVOKED => {
                let subject = subject(event, payload, set)?;
                request(event, payload, &subject, time)?
            }
            _ => None,
        };
        match request {
            Some(mut req) => {
                req.reason = Some(reason(event, payload));
                req.actor = Some(actor.to_owned());
                // The event time is already bounded to MAX_FUTURE_SKEW ahead.
                let cutoffs = veto_core::request::Cutoffs {
                    now,
                    max_lifetime,
                    max_offset: MAX_FUTURE_SKEW,
                };
                let rev = req
                    .into_revocation(&cutoffs)
                    .map_err(|e| invalid(event, e))?;
                out.revocations.push(rev);
            }
            None => out.ignored.push(event.clone()),
        }
    }
    Ok(out)
}

fn subject(
    event: &str,
    payload: &Map<String, Value>,
    set: &SetClaims,
) -> Result<Subject, SetError> {
    let value = payload
        .get("subject")
        .or(set.sub_id.as_ref())
        .ok_or_else(|| {
            invalid(
                event,
                "no subject: give `sub_id` in the SET or `subject` in the event",
            )
        })?;
    Subject::parse(value).map_err(|e| invalid(event, e))
}

fn scoped(scope: &str, iss: Option<&str>) -> RevokeRequest {
    RevokeRequest {
        scope: scope.to_owned(),
        iss: iss.map(str::to_owned),
        ..RevokeRequest::default()
    }
}

fn user_cutoff(event: &str, subject: &Subject, time: u64) -> Result<RevokeRequest, SetError> {
    let (iss, sub) = subject.user().ok_or_else(|| {
        invalid(
            event,
            format!(
                "a subject of format {} does not name a user",
                subject.format()
            ),
        )
    })?;
    Ok(RevokeRequest {
        sub: Some(sub.to_owned()),
        before: Some(time),
        ..scoped("subject", iss)
    })
}

/// The revocation one event asks for, or `None` when it asks for none.
fn request(
    event: &str,
    payload: &Map<String, Value>,
    subject: &Subject,
    time: u64,
) -> Result<Option<RevokeRequest>, SetError> {
    Ok(Some(match event {
        SESSION_REVOKED => match subject.session() {
            Some((iss, sid)) => RevokeRequest {
                sid: Some(sid.to_owned()),
                ..scoped("session", iss)
            },
            None => user_cutoff(event, subject, time)?,
        },
        CREDENTIAL_CHANGE => match payload.get("change_type").and_then(Value::as_str) {
            Some("revoke" | "delete") => user_cutoff(event, subject, time)?,
            Some(_) => return Ok(None),
            None => return Err(invalid(event, "`change_type` is required")),
        },
        TOKEN_REVOKED => match subject {
            Subject::JwtId { iss, jti } => RevokeRequest {
                jti: Some(jti.clone()),
                ..scoped("token", Some(iss))
            },
            Subject::Opaque(token) | Subject::OAuthToken(token) => RevokeRequest {
                token: Some(token.clone()),
                ..scoped("token", None)
            },
            other => {
                return Err(invalid(
                    event,
                    format!(
                        "a subject of format {} does not name a token; use jwt_id, opaque or oauth_token",
                        other.format()
                    ),
                ))
            }
        },
        TOKENS_REVOKED => match subject {
            Subject::OAuthClient(client_id) => RevokeRequest {
                client_id: Some(client_id.clone()),
                before: Some(time),
                ..scoped("client", None)
            },
            other => user_cutoff(event, other, time)?,
        },
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_prefer_english_and_fit_a_note() {
        let p = json!({"reason_admin": {"de": "Verstoss", "en": "Policy violation"}});
        assert_eq!(
            reason(SESSION_REVOKED, p.as_object().unwrap()),
            format!("{SESSION_REVOKED}: Policy violation")
        );
        let p = json!({"reason_admin": "plain"});
        assert!(reason(TOKEN_REVOKED, p.as_object().unwrap()).ends_with(": plain"));
        let p = json!({"reason_admin": "é".repeat(400)});
        let r = reason(TOKEN_REVOKED, p.as_object().unwrap());
        assert!(r.len() <= MAX_NOTE_BYTES && r.len() > MAX_NOTE_BYTES - 2);
        assert_eq!(reason(TOKEN_REVOKED, &Map::new()), TOKEN_REVOKED);
    }
}
