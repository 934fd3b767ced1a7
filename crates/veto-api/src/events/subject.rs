//! Subject identifiers of Security Event Tokens (RFC 9493 and the Shared
//! Signals Framework): what an event is about.
//!
//! The format is named by `format` (RFC 9493, SSF 1.0) or by `subject_type`
//! (earlier CAEP and RISC drafts, which also spell `iss_sub` as `iss-sub`). A
//! complex subject is `{"format": "complex", "user": {...}, "session": {...}}`,
//! or, in earlier drafts, the same members without a format.

use serde_json::{Map, Value};

/// A subject, as far as veto can act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    /// `iss_sub`: a user at an issuer.
    IssSub { iss: String, sub: String },
    /// `opaque`: an identifier whose meaning depends on the event.
    Opaque(String),
    /// `email`: a user by email address.
    Email(String),
    /// `jwt_id`: one JWT, by its issuer and `jti`.
    JwtId { iss: String, jti: String },
    /// `complex`: a user and/or a session (other members are ignored).
    Complex {
        user: Option<Box<Subject>>,
        session: Option<Box<Subject>>,
    },
    /// `oauth_token` (OAuth event types draft): a token string.
    OAuthToken(String),
    /// `oauth_client` (OAuth event types draft): a client.
    OAuthClient(String),
}

fn text(map: &Map<String, Value>, name: &str, format: &str) -> Result<String, String> {
    match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!(
            "a subject of format {format:?} needs a non-empty `{name}` string"
        )),
    }
}

impl Subject {
    /// Parses a subject identifier. The error is the description for a 400.
    pub(crate) fn parse(value: &Value) -> Result<Subject, String> {
        Subject::parse_nested(value, true)
    }

    fn parse_nested(value: &Value, top: bool) -> Result<Subject, String> {
        let Value::Object(map) = value else {
            return Err("a subject identifier must be a JSON object".into());
        };
        let format = match map.get("format").or_else(|| map.get("subject_type")) {
            Some(Value::String(f)) => f.as_str(),
            Some(_) => return Err("a subject's `format` must be a string".into()),
            None if top && (map.contains_key("user") || map.contains_key("session")) => "complex",
            None => return Err("the subject has no `format`".into()),
        };
        Ok(match format {
            "iss_sub" | "iss-sub" => Subject::IssSub {
                iss: text(map, "iss", format)?,
                sub: text(map, "sub", format)?,
            },
            "opaque" => Subject::Opaque(text(map, "id", format)?),
            "email" => Subject::Email(text(map, "email", format)?),
            "jwt_id" | "jwt-id" => Subject::JwtId {
                iss: text(map, "iss", format)?,
                jti: text(map, "jti", format)?,
            },
            "complex" if top => {
                let part = |name: &str| -> Result<Option<Box<Subject>>, String> {
                    map.get(name)
                        .map(|v| {
                            Subject::parse_nested(v, false)
                                .map(Box::new)
                                .map_err(|e| format!("`{name}` of a complex subject: {e}"))
                        })
                        .transpose()
                };
                let (user, session) = (part("user")?, part("session")?);
                if user.is_none() && session.is_none() {
                    return Err("a complex subject needs `user` or `session`".into());
                }
                Subject::Complex { user, session }
            }
            "complex" => return Err("a complex subject cannot nest another".into()),
            "oauth_token" => {
                match map.get("token_identifier_alg").and_then(Value::as_str) {
                    None | Some("plain" | "token_string") => {}
                    Some(other) => {
                        return Err(format!(
                            "token_identifier_alg {other:?} is not supported; send the token itself (\"plain\")"
                        ))
                    }
                }
                Subject::OAuthToken(text(map, "token", format)?)
            }
            "oauth_client" => Subject::OAuthClient(text(map, "client_id", format)?),
            other => {
                return Err(format!(
                    "subject format {other:?} is not supported; supported are iss_sub, opaque, email, jwt_id, complex, oauth_token and oauth_client"
                ))
            }
        })
    }

    /// The user this subject names, as (issuer if known, subject).
    pub(crate) fn user(&self) -> Option<(Option<&str>, &str)> {
        match self {
            Subject::IssSub { iss, sub } => Some((Some(iss), sub)),
            Subject::Email(e) | Subject::Opaque(e) => Some((None, e)),
            Subject::Complex { user: Some(u), .. } => u.user(),
            _ => None,
        }
    }

    /// The session this subject names, as (issuer if known, session id).
    pub(crate) fn session(&self) -> Option<(Option<&str>, &str)> {
        match self {
            Subject::Opaque(id) => Some((None, id)),
            Subject::Complex {
                session: Some(s),
                user,
            } => {
                let iss = user.as_deref().and_then(Subject::user).and_then(|(i, _)| i);
                match s.as_ref() {
                    Subject::Opaque(id) => Some((iss, id)),
                    Subject::IssSub { iss, sub } => Some((Some(iss), sub)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The format name, for error messages.
    pub(crate) fn format(&self) -> &'static str {
        match self {
            Subject::IssSub { .. } => "iss_sub",
            Subject::Opaque(_) => "opaque",
            Subject::Email(_) => "email",
            Subject::JwtId { .. } => "jwt_id",
            Subject::Complex { .. } => "complex",
            Subject::OAuthToken(_) => "oauth_token",
            Subject::OAuthClient(_) => "oauth_client",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_and_their_older_spellings() {
        let s = Subject::parse(&json!({"format": "iss_sub", "iss": "i", "sub": "u"})).unwrap();
        assert_eq!(s.user(), Some((Some("i"), "u")));
        let s =
            Subject::parse(&json!({"subject_type": "iss-sub", "iss": "i", "sub": "u"})).unwrap();
        assert_eq!(s.user(), Some((Some("i"), "u")));
        let s = Subject::parse(&json!({"format": "email", "email": "a@b"})).unwrap();
        assert_eq!(s.user(), Some((None, "a@b")));
        assert_eq!(s.session(), None);

        let complex = json!({
            "format": "complex",
            "user": {"format": "iss_sub", "iss": "i", "sub": "u"},
            "session": {"format": "opaque", "id": "s1"},
            "tenant": {"format": "opaque", "id": "t"},
        });
        let s = Subject::parse(&complex).unwrap();
        assert_eq!(s.session(), Some((Some("i"), "s1")));
        assert_eq!(s.user(), Some((Some("i"), "u")));
        // Earlier drafts: the same members without a format.
        let mut old = complex.clone();
        old.as_object_mut().unwrap().remove("format");
        assert_eq!(Subject::parse(&old).unwrap(), s);
    }

    #[test]
    fn what_cannot_be_acted_on_is_refused() {
        for bad in [
            json!("alice"),
            json!({"format": "phone_number", "phone_number": "+1"}),
            json!({"format": "iss_sub", "iss": "i"}),
            json!({"format": "opaque", "id": ""}),
            json!({"format": "complex", "tenant": {"format": "opaque", "id": "t"}}),
            json!({"format": "complex", "user": {"format": "complex", "user": {}}}),
            json!({"format": "oauth_token", "token_identifier_alg": "sha256", "token": "x"}),
            json!({"id": "x"}),
        ] {
            assert!(Subject::parse(&bad).is_err(), "{bad}");
        }
    }
}
