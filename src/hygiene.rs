//! Secret hygiene: what the node creates is private to its user, and secrets
//! it is handed that others could read, or guess, are reported at start.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Tokens shorter than this are reported as weak.
pub(crate) const MIN_TOKEN_CHARS: usize = 32;

/// From here on, files and directories this process creates (the database,
/// the durability marker, a generated admin token) are readable by its user
/// only, whatever the umask it was started with.
pub(crate) fn restrict_new_files() {
    // SAFETY: umask only swaps the process's file mode mask; it cannot fail
    // and touches no memory.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates the data directory with mode 0700, or warns if an existing one
/// lets others in.
pub(crate) fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    if let Some(mode) = open_to_others(dir) {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:o}"),
            "the data directory is open to other users; it holds the admin token and every revocation's reason and actor (chmod 700 it)"
        );
    }
    Ok(())
}

/// Warns about a token others could read (from a file with group or other
/// permissions) or guess (shorter than [`MIN_TOKEN_CHARS`]).
pub(crate) fn check_token(token: &str, file: Option<&Path>) {
    if token.chars().count() < MIN_TOKEN_CHARS {
        tracing::warn!(
            chars = token.chars().count(),
            min = MIN_TOKEN_CHARS,
            "the admin token is short enough to guess; use at least {MIN_TOKEN_CHARS} random characters"
        );
    }
    let Some(path) = file else { return };
    if let Some(mode) = open_to_others(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "the admin token file is readable by other users (chmod 600 it)"
        );
    }
}

/// The permission bits of `path`, if they give its group or others any access.
pub(crate) fn open_to_others(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}
