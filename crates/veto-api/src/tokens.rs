//! Named API tokens and their roles: the tokens file, and the table the API
//! authenticates requests against.
//!
//! The tokens file is TOML, one `[[tokens]]` table per token:
//!
//! ```toml
//! [[tokens]]
//! name = "soc-bot"
//! roles = ["revoke"]
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```
//!
//! Only the SHA-256 of a token is stored, so the file gives away no
//! credential. The admin token holds every role under the name `admin`.
//!
//! | role | may |
//! |---|---|
//! | `read` | `/v1/watch`, `/v1/snapshot`: the enforcement fields only |
//! | `revoke` | the writes, and receipts |
//! | `audit` | the audit trail, receipts, full records on watch and snapshot |
//! | `admin` | everything, including `/v1/peers` |
//!
//! Lookups by digest go through a hash map: that is not a constant-time
//! comparison, but what it could leak is a prefix of a SHA-256, which gives
//! no way to a token that hashes to it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The name the admin token authenticates as.
pub const ADMIN_NAME: &str = "admin";

/// The longest token name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// The most tokens one file may hold.
pub const MAX_TOKENS: usize = 10_000;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Follow the records a gateway enforces: watch, snapshot, filter.
    Read,
    /// Write revocations and read their receipts.
    Revoke,
    /// Read the audit trail and full records.
    Audit,
    /// Everything, including membership.
    Admin,
}

impl Role {
    /// Every role, in the order they are listed.
    pub const ALL: [Role; 4] = [Role::Read, Role::Revoke, Role::Audit, Role::Admin];

    /// The role's name in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Revoke => "revoke",
            Role::Audit => "audit",
            Role::Admin => "admin",
        }
    }

    /// The role named `text`.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    fn bit(self) -> u8 {
        match self {
            Role::Read => 1,
            Role::Revoke => 2,
            Role::Audit => 4,
            Role::Admin => 8,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    /// Every role.
    pub const ALL: Roles = Roles(15);

    /// The set holding `roles`.
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |bits, r| bits | r.bit()))
    }

    /// Whether the set grants what `role` may do. `admin` grants every role,
    /// and `audit` grants `read` (full records are more than enforcement
    /// fields).
    pub fn grants(self, role: Role) -> bool {
        let held = |r: Role| self.0 & r.bit() != 0;
        held(Role::Admin) || held(role) || (role == Role::Read && held(Role::Audit))
    }

    /// The roles listed in the set.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.0 & r.bit() != 0)
    }

    /// The roles as `a, b`, or `none`.
    pub fn describe(self) -> String {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// Who a request authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name: a record's `actor`.
    pub name: Arc<str>,
    /// What it may do.
    pub roles: Roles,
}

/// One `[[tokens]]` entry of the tokens file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    /// Its name.
    pub name: String,
    /// Its roles (at least one).
    pub roles: Roles,
    /// The SHA-256 of the token.
    pub sha256: [u8; 32],
}

/// A tokens file, or a set of tokens, that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokensError {
    /// The file is not TOML of the expected shape.
    #[error("the tokens file is not valid: {0}")]
    Syntax(String),
    /// An entry is wrong.
    #[error("token {index} ({name:?}): {message}")]
    Entry {
        /// Its position in the file, from 0.
        index: usize,
        /// Its name as written.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Two tokens share a name.
    #[error("two tokens are named {0:?}")]
    DuplicateName(String),
    /// Two entries hold the same token.
    #[error("tokens {0:?} and {1:?} are the same token")]
    DuplicateToken(String, String),
    /// Over [`MAX_TOKENS`].
    #[error("{0} tokens; the limit is {MAX_TOKENS}")]
    TooMany(usize),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tokens: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    roles: Vec<String>,
    sha256: String,
}

/// Whether `name` may name a token: 1 to [`MAX_NAME_BYTES`] of ASCII letters,
/// digits and `-_.@`. That keeps names printable in logs and audit lines, and
/// free of the separator that a record's `actor` uses (see
/// [`veto_core::actor`]).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!("a name is 1 to {MAX_NAME_BYTES} bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
    {
        return Err(format!(
            "{c:?} is not allowed in a name (letters, digits and -_.@ are)"
        ));
    }
    Ok(())
}

fn entry(index: usize, raw: RawEntry) -> Result<TokenEntry, TokensError> {
    let fail = |message: String| TokensError::Entry {
        index,
        name: raw.name.clone(),
        message,
    };
    check_name(&raw.name).map_err(fail)?;
    if raw.roles.is_empty() {
        return Err(fail("`roles` is empty: give at least one".into()));
    }
    let mut roles = Vec::new();
    for r in &raw.roles {
        roles.push(Role::parse(r).ok_or_else(|| {
            fail(format!(
                "unknown role {r:?}; the roles are read, revoke, audit, admin"
            ))
        })?);
    }
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(raw.sha256.trim(), &mut sha256)
        .map_err(|_| fail("`sha256` must be 64 hex digits".into()))?;
    Ok(TokenEntry {
        name: raw.name,
        roles: Roles::of(&roles),
        sha256,
    })
}

/// Reads a tokens file's text. Every entry is checked; duplicates are
/// refused by [`TokenTable::new`].
pub fn parse_tokens_file(text: &str) -> Result<Vec<TokenEntry>, TokensError> {
    let file: File = toml::from_str(text).map_err(|e| TokensError::Syntax(e.to_string()))?;
    if file.tokens.len() > MAX_TOKENS {
        return Err(TokensError::TooMany(file.tokens.len()));
    }
    file.tokens
        .into_iter()
        .enumerate()
        .map(|(i, raw)| entry(i, raw))
        .collect()
}

/// The line of a tokens file that holds `token` under `name` with `roles`.
pub fn tokens_file_entry(name: &str, roles: Roles, token: &str) -> String {
    let roles: Vec<String> = roles.iter().map(|r| format!("{:?}", r.as_str())).collect();
    format!(
        "[[tokens]]\nname = {name:?}\nroles = [{}]\nsha256 = \"{}\"\n",
        roles.join(", "),
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// The tokens a node accepts, by digest.
#[derive(Clone, Debug, Default)]
pub struct TokenTable {
    by_digest: HashMap<[u8; 32], Principal>,
}

impl TokenTable {
    /// The table of the admin token (if any and not empty) and `entries`.
    pub fn new(
        admin_token: Option<&str>,
        entries: Vec<TokenEntry>,
    ) -> Result<TokenTable, TokensError> {
        let mut by_digest = HashMap::new();
        let mut names: HashMap<String, ()> = HashMap::new();
        let admin = admin_token.filter(|t| !t.is_empty()).map(|t| TokenEntry {
            name: ADMIN_NAME.to_owned(),
            roles: Roles::ALL,
            sha256: Sha256::digest(t.as_bytes()).into(),
        });
        for e in admin.into_iter().chain(entries) {
            if names.insert(e.name.clone(), ()).is_some() {
                return Err(TokensError::DuplicateName(e.name));
            }
            let principal = Principal {
                name: Arc::from(e.name.as_str()),
                roles: e.roles,
            };
            if let Some(other) = by_digest.insert(e.sha256, principal) {
                return Err(TokensError::DuplicateToken(other.name.to_string(), e.name));
            }
        }
        Ok(TokenTable { by_digest })
    }

    /// Who `secret` authenticates as, if anyone.
    pub fn lookup(&self, secret: &[u8]) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(secret).into();
        self.by_digest.get(&digest)
    }

    /// Whether no token is accepted (every endpoint that needs a role
    /// answers 401).
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }
}

/// A replaceable [`TokenTable`]: replacing it while the node serves changes
/// which tokens are accepted from the next request on (a reload).
#[derive(Clone, Debug, Default)]
pub struct TokenSet(Arc<RwLock<Arc<TokenTable>>>);

impl TokenSet {
    /// A set holding `table`.
    pub fn new(table: TokenTable) -> TokenSet {
        TokenSet(Arc::new(RwLock::new(Arc::new(table))))
    }

    /// The table now.
    pub fn current(&self) -> Arc<TokenTable> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the table.
    pub fn replace(&self, table: TokenTable) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(t: &str) -> String {
        hex::encode(Sha256::digest(t.as_bytes()))
    }

    #[test]
    fn a_file_reads_back_and_grants_its_roles() {
        let text = format!(
            "{}{}",
            tokens_file_entry("soc-bot", Roles::of(&[Role::Revoke]), "t1"),
            tokens_file_entry("edge", Roles::of(&[Role::Read]), "t2")
        );
        let entries = parse_tokens_file(&text).unwrap();
        let table = TokenTable::new(Some("admin-secret"), entries).unwrap();
        assert_eq!(table.len(), 3);
        let bot = table.lookup(b"t1").unwrap();
        assert_eq!(&*bot.name, "soc-bot");
        assert!(bot.roles.grants(Role::Revoke) && !bot.roles.grants(Role::Read));
        assert!(table.lookup(b"t3").is_none());
        let admin = table.lookup(b"admin-secret").unwrap();
        assert!(Role::ALL.iter().all(|r| admin.roles.grants(*r)));
        let audit = Roles::of(&[Role::Audit]);
        assert!(audit.grants(Role::Read) && !audit.grants(Role::Revoke));
    }

    #[test]
    fn bad_files_name_what_is_wrong() {
        let bad = |text: &str| parse_tokens_file(text).unwrap_err().to_string();
        let d = digest("x");
        assert!(
            bad("[[tokens]]\nname = \"a\"\nroles = [\"root\"]\nsha256 = \"00\"")
                .contains("unknown role")
        );
        assert!(bad(&format!(
            "[[tokens]]\nname = \"a\"\nroles = []\nsha256 = \"{d}\""
        ))
        .contains("empty"));
        assert!(
            bad("[[tokens]]\nname = \"a\"\nroles = [\"read\"]\nsha256 = \"zz\"").contains("64 hex")
        );
        assert!(bad(&format!(
            "[[tokens]]\nname = \"a b\"\nroles = [\"read\"]\nsha256 = \"{d}\""
        ))
        .contains("not allowed"));
        assert!(bad(&format!(
            "[[tokens]]\nname = \"a\"\nroles = [\"read\"]\nsha256 = \"{d}\"\nextra = 1"
        ))
        .contains("extra"));
        assert!(bad("tokens = 3").contains("not valid"));
        let two = format!(
            "{}{}",
            tokens_file_entry("a", Roles::of(&[Role::Read]), "same"),
            tokens_file_entry("b", Roles::of(&[Role::Read]), "same")
        );
        let err = TokenTable::new(None, parse_tokens_file(&two).unwrap()).unwrap_err();
        assert!(matches!(err, TokensError::DuplicateToken(..)), "{err}");
        let named_admin = tokens_file_entry("admin", Roles::of(&[Role::Read]), "other");
        let err = TokenTable::new(Some("s"), parse_tokens_file(&named_admin).unwrap()).unwrap_err();
        assert_eq!(err, TokensError::DuplicateName("admin".into()));
        assert!(parse_tokens_file("").unwrap().is_empty());
    }
}
