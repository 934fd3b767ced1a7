//! `--audit-log FILE`: one JSON line per record this node makes or takes in
//! from a peer, for a SIEM to follow. A local record's line is written (and
//! flushed to disk) after the record is durable and before its revoke is
//! answered; a replicated record's line after it is durable here.
//!
//! Each line: `{"schema": "veto.audit.v1", "source": "local" | "replicated",
//! "node": <this node's name>, "logged_at": <Unix seconds>, "record": {...}}`,
//! the record in the API's JSON form. The file is only appended to; rotate it
//! by renaming it and restarting, or with `copytruncate`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use serde::Serialize;
use veto_core::view::RecordView;
use veto_core::Record;

/// The schema of every line; a change of its fields changes the version.
pub(crate) const SCHEMA: &str = "veto.audit.v1";

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    /// Made here by a revoke.
    Local,
    /// Taken in from a peer.
    Replicated,
}

#[derive(Serialize)]
struct Line<'a> {
    schema: &'static str,
    source: Source,
    node: &'a str,
    logged_at: u64,
    record: RecordView,
}

/// The audit log file.
pub(crate) struct AuditLog {
    path: PathBuf,
    node: String,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (or creates, private to this user) the file at `path` for
    /// appending, for the node called `node`.
    pub(crate) fn open(path: &Path, node: &str) -> anyhow::Result<AuditLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            node: node.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Appends one line per record and flushes them to disk. Blocking. A
    /// failure is logged and counted, never passed on: the records are
    /// durable and enforced either way, and the audit trail
    /// (`GET /v1/revocations`) still has them.
    pub(crate) fn append(&self, records: &[Record], source: Source, now_secs: u64) {
        if records.is_empty() {
            return;
        }
        let mut text = String::new();
        for record in records {
            let line = Line {
                schema: SCHEMA,
                source,
                node: &self.node,
                logged_at: now_secs,
                record: RecordView::from(record),
            };
            // Strings and numbers only: serialising cannot fail.
            if let Ok(json) = serde_json::to_string(&line) {
                text.push_str(&json);
                text.push('\n');
            }
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, records = records.len(), "cannot write the audit log");
            metrics::counter!("veto_audit_log_errors_total").increment(1);
        }
    }
}
