//! The `veto serve --config` file: its keys ([`ConfigFile`]), how its text is
//! read ([`parse`], [`check`]), and the checks a file can fail on its own.
//!
//! Merging the file with flags and the environment, and reading the files it
//! names (certificates, JWKS), is the binary's job; this crate sees only the
//! text it is given. It must never depend on the node, the API, an async
//! runtime or anything that does I/O, so that the fuzz targets can feed it
//! arbitrary text.

mod check;
mod file;

pub use check::{check, parse, ConfigError};
pub use file::{ConfigFile, Jwks, LogFormat, StalePolicy, TransmitterEntry};
