//! Named API tokens: `veto token add`, and loading the tokens file at start
//! and on each SIGHUP (see [`veto_api::tokens`] for the file and the roles).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Subcommand;
use tokio::signal::unix::{signal, SignalKind};
use veto_api::tokens::{check_name, parse_tokens_file, tokens_file_entry};
use veto_api::{Role, Roles, TokenEntry, TokenSet, TokenTable};

const RELOADS: &str = "veto_tokens_reloads_total";

/// `veto token ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Creates a token, adds its SHA-256 to the tokens file and prints the
    /// token, once: it is stored nowhere else. A node reads the change on
    /// SIGHUP.
    Add {
        /// Its name, which records it writes carry as `actor`.
        #[arg(long, value_parser = parse_name)]
        name: String,
        /// A role: read, revoke, audit or admin; repeatable.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// The tokens file (created if missing).
        #[arg(long, env = "VETO_TOKENS_FILE", default_value = "veto-tokens.toml")]
        tokens_file: PathBuf,
    },
}

fn parse_name(text: &str) -> Result<String, String> {
    check_name(text).map(|()| text.to_owned())
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("{text:?} is not a role: read, revoke, audit or admin"))
}

/// Runs `veto token`.
pub(crate) fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Add {
            name,
            roles,
            tokens_file,
        } => add(&tokens_file, &name, Roles::of(&roles)),
    }
}

fn add(path: &Path, name: &str, roles: Roles) -> anyhow::Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut entries = parse_tokens_file(&text)
        .with_context(|| format!("the tokens file {} is not valid", path.display()))?;
    if entries.iter().any(|e| e.name == name) {
        bail!("{} already has a token named {name:?}", path.display());
    }
    let token = format!("veto_{}", hex::encode(rand::random::<[u8; 32]>()));
    let entry = tokens_file_entry(name, roles, &token);
    // What the node will read back must hold the new token, else nothing is
    // written.
    entries.extend(parse_tokens_file(&entry)?);
    TokenTable::new(None, entries)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&entry);
    write_atomically(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "added token {name:?} ({}) to {}; send the node SIGHUP to load it. The token, shown once:",
        roles.describe(),
        path.display()
    );
    println!("{token}");
    Ok(())
}

/// Writes `text` to `path` through a private temporary file renamed over it,
/// so that a node reloading meanwhile reads the old file or the new one.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The entries of the tokens file at `path`, with a warning when others may
/// read it (the hashes give no token away, but who holds which role does).
fn read_entries(path: &Path) -> anyhow::Result<Vec<TokenEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
    if let Some(mode) = crate::hygiene::open_to_others(path) {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the tokens file is readable by other users (chmod 600 it)");
    }
    parse_tokens_file(&text).with_context(|| format!("in the tokens file {}", path.display()))
}

/// The tokens a node accepts: the admin token and those of `tokens_file`.
pub(crate) fn load(admin_token: &str, tokens_file: Option<&Path>) -> anyhow::Result<TokenTable> {
    let entries = match tokens_file {
        Some(path) => read_entries(path)?,
        None => Vec::new(),
    };
    let table = TokenTable::new(Some(admin_token), entries)?;
    Ok(table)
}

/// Reads the tokens file again on each SIGHUP, for as long as the node runs.
/// A file that cannot be used changes nothing and is logged.
pub(crate) fn spawn_reload(
    admin_token: String,
    tokens_file: PathBuf,
    set: TokenSet,
) -> anyhow::Result<()> {
    let mut hangup =
        signal(SignalKind::hangup()).context("cannot listen for SIGHUP (tokens reload)")?;
    for result in ["ok", "error"] {
        metrics::counter!(RELOADS, "result" => result).increment(0);
    }
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let result = match load(&admin_token, Some(&tokens_file)) {
                Ok(table) => {
                    tracing::info!(path = %tokens_file.display(), tokens = table.len(), "tokens file reloaded");
                    set.replace(table);
                    "ok"
                }
                Err(e) => {
                    tracing::error!(path = %tokens_file.display(), error = %format!("{e:#}"), "tokens file reload refused; the tokens are unchanged");
                    "error"
                }
            };
            metrics::counter!(RELOADS, "result" => result).increment(1);
        }
    });
    Ok(())
}
