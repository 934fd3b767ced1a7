//! The audit query: which records an operator wants to see, newest first.

use crate::id::NodeId;
use crate::record::{Record, ScopeKind, Target};

/// The most records one audit page returns.
pub const MAX_AUDIT_LIMIT: usize = 1_000;
/// The page size when none is asked for.
pub const DEFAULT_AUDIT_LIMIT: usize = 100;

/// Filters for the audit trail (`GET /v1/revocations`), as the API parses
/// them, the client sends them and the store applies them. Every filter that
/// is set must match. The default sets none, with the default limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only records of this scope.
    pub scope: Option<ScopeKind>,
    /// Only records with a key field (iss, jti, sid, sub, client_id or kid) equal
    /// to this. An opaque token is matched by its hex SHA-256.
    pub key: Option<String>,
    /// Only records made at this origin.
    pub origin: Option<NodeId>,
    /// Only records revoked at or after this Unix second.
    pub since: Option<u64>,
    /// Only records revoked strictly before this Unix second.
    pub until: Option<u64>,
    /// At most this many records.
    pub limit: usize,
}

impl Default for AuditQuery {
    fn default() -> AuditQuery {
        AuditQuery {
            scope: None,
            key: None,
            origin: None,
            since: None,
            until: None,
            limit: DEFAULT_AUDIT_LIMIT,
        }
    }
}

impl AuditQuery {
    /// The query string's parameters that ask the API for this query.
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(s) = self.scope {
            q.push(("scope", s.as_str().to_owned()));
        }
        if let Some(k) = &self.key {
            q.push(("key", k.clone()));
        }
        if let Some(o) = self.origin {
            q.push(("origin", o.to_string()));
        }
        if let Some(s) = self.since {
            q.push(("since", s.to_string()));
        }
        if let Some(u) = self.until {
            q.push(("until", u.to_string()));
        }
        q.push(("limit", self.limit.to_string()));
        q
    }

    /// How many records one page holds: the limit, the default page size for
    /// 0, and never more than [`MAX_AUDIT_LIMIT`].
    pub fn page_limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_AUDIT_LIMIT,
            n => n.min(MAX_AUDIT_LIMIT),
        }
    }

    /// Whether `record` passes every filter (the limit aside).
    pub fn matches(&self, record: &Record) -> bool {
        let revoked_at = record.revoked_at();
        self.scope.is_none_or(|s| record.target.kind() == s)
            && self.origin.is_none_or(|o| record.origin() == o)
            && self.since.is_none_or(|t| revoked_at >= t)
            && self.until.is_none_or(|t| revoked_at < t)
            && self
                .key
                .as_deref()
                .is_none_or(|k| target_has_key(&record.target, k))
    }
}

fn target_has_key(target: &Target, key: &str) -> bool {
    if target.iss() == Some(key) {
        return true;
    }
    match target {
        Target::Token { jti, .. } => jti == key,
        Target::TokenHash { sha256 } => hex::encode(sha256) == key,
        Target::Session { sid, .. } => sid == key,
        Target::Subject { sub, .. } => sub == key,
        Target::Client { client_id, .. } => client_id == key,
        Target::Issuer { .. } => false,
        Target::Key { kid, .. } => kid == key,
        Target::Peer { name, cert_sha256 } => {
            name.as_deref() == Some(key) || cert_sha256.is_some_and(|sha| hex::encode(sha) == key)
        }
    }
}
