//! The two ways the store fails: opening a data directory, and using it.

use std::io;
use std::path::PathBuf;

/// Why a data directory could not be opened. Each message is one line that names
/// the path and what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory does not exist and cannot be made (a parent is a file, or
    /// permissions forbid it).
    #[error("cannot create data dir {}: {source}", path.display())]
    CreateDir {
        /// The data directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The directory exists but files cannot be created in it.
    #[error("data dir {} is not writable: {source}", path.display())]
    NotWritable {
        /// The data directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Another process (most likely another veto node) holds the directory.
    #[error("data dir {} is locked by another veto process; stop it or pick another --data-dir", path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The files in the directory are damaged or not veto's.
    #[error("data dir {} holds corrupt data: {detail}", path.display())]
    Corrupt {
        /// The data directory.
        path: PathBuf,
        /// What was found wrong.
        detail: String,
    },
    /// The directory was written by a veto whose on-disk format this one cannot read.
    #[error("data dir {} has format version {found}; this veto reads version {expected}", path.display())]
    UnsupportedFormat {
        /// The data directory.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// Any other storage failure while opening.
    #[error("cannot open data dir {}: {detail}", path.display())]
    Storage {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

/// A failure of an open store. When a write returns an error nothing of it was
/// acknowledged: the caller must not report the records as stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O error, full disk, internal error).
    #[error("storage failure: {0}")]
    Storage(#[from] sled::Error),
    /// An entry on disk cannot be decoded.
    #[error("corrupt {tree} entry {key}: {detail}")]
    Corrupt {
        /// The tree the entry lives in.
        tree: &'static str,
        /// The entry's key, as text.
        key: String,
        /// What failed to decode.
        detail: String,
    },
    /// A value is too large to be stored and read back.
    #[error("{what} encodes to {len} bytes; the limit is {limit}")]
    TooLarge {
        /// What was being stored.
        what: String,
        /// Its encoded size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what}: {detail}")]
    Encode {
        /// What was being stored.
        what: String,
        /// The encoder's message.
        detail: String,
    },
    /// An argument is not acceptable (for example an empty peer address).
    #[error("{0}")]
    Invalid(String),
    /// An earlier write failed part-way (a flush or commit error, or a panic),
    /// so what is on disk is no longer known. The store refuses further writes;
    /// reads still work. Restarting the node recovers from what is on disk.
    #[error("the store stopped accepting writes: {0}")]
    Halted(String),
    /// The database that failed could not be closed (sled hangs on some
    /// failures), so it cannot be opened again in this process: only a
    /// restart of the process recovers.
    #[error("the failed database cannot be closed in this process ({0}); restart the process")]
    Wedged(String),
}
