//! The node's two streams: `GET /v1/watch` (server-sent events) and
//! `GET /v1/snapshot` (newline-delimited JSON), read incrementally.
//!
//! A watch heartbeat is the block
//!
//! ```text
//! : heartbeat
//! event: heartbeat
//! data: {"origins":[{"origin":"...","name":"us-east","region":"us-east","complete_through":1700000000.5,"last_heard":1700000000.5,"staleness_s":0.4}]}
//! ```
//!
//! whose `origins` are the node's freshness watermarks when it sent it (the
//! shape of `/v1/status`'s `origins`), read as
//! [`WatchEvent::Heartbeat`]`{ origins: Some(..) }`. A node that sends a bare
//! `:heartbeat` comment instead gives `origins: None`.

use std::collections::VecDeque;

use serde::Deserialize;
use veto_core::receipt::OriginView;
use veto_core::Record;

use crate::error::ClientError;
use crate::record::{parse_record, record_from_value};

/// The longest line either stream may send; a record is far shorter.
const MAX_LINE: usize = 1 << 20;

/// Splits a byte stream into lines, tolerating `\r\n`.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts; consumed bytes are dropped only
    /// when more arrive, so a chunk of many lines is not shifted once per line.
    start: usize,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        let rest = &self.buf[self.start..];
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            if rest.len() > MAX_LINE {
                return Err(ClientError::protocol("a line longer than 1 MiB"));
            }
            return Ok(None);
        };
        let mut line = &rest[..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| ClientError::protocol("a line that is not UTF-8"))?
            .to_owned();
        self.start += end + 1;
        Ok(Some(line))
    }
}

/// One message of the watch stream.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    /// The stream is open and continues after `cursor`.
    Ready {
        /// Where the stream continues from.
        cursor: String,
    },
    /// A record that became durable on the node.
    Record {
        /// The record's cursor: resume after it with [`crate::Client::watch`].
        cursor: String,
        /// The record.
        record: Record,
    },
    /// A heartbeat: the node is there, and, from a node that sends them,
    /// its freshness watermarks at the time (see the module doc).
    Heartbeat {
        /// Per origin, up to when the node holds everything it made and how
        /// stale that was when the heartbeat was sent; `None` from a node
        /// that sends no watermarks.
        origins: Option<Vec<OriginView>>,
    },
    /// The node cannot continue this stream without a gap: reload the snapshot
    /// and watch from its cursor. The stream ends after this.
    Resync {
        /// `unknown_epoch`, `too_far_behind` or `ahead`.
        reason: String,
        /// The node's explanation.
        message: String,
    },
}

#[derive(Deserialize)]
struct ReadyJson {
    cursor: String,
}

#[derive(Deserialize)]
struct HeartbeatJson {
    origins: Vec<OriginView>,
}

#[derive(Deserialize)]
struct ResyncJson {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// An open `GET /v1/watch` stream.
pub struct WatchStream {
    response: reqwest::Response,
    lines: Lines,
    ready: VecDeque<WatchEvent>,
    id: Option<String>,
    kind: String,
    data: String,
    /// Whether the block being read held a comment.
    comment: bool,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("url", self.response.url())
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    pub(crate) fn new(response: reqwest::Response) -> WatchStream {
        WatchStream {
            response,
            lines: Lines::default(),
            ready: VecDeque::new(),
            id: None,
            kind: String::new(),
            data: String::new(),
            comment: false,
        }
    }

    /// The next message, or `None` when the node closed the stream.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            while let Some(line) = self.lines.next_line()? {
                self.line(&line)?;
            }
            if !self.ready.is_empty() {
                continue;
            }
            match self.response.chunk().await? {
                Some(bytes) => self.lines.push(&bytes),
                None => return Ok(None),
            }
        }
    }

    fn line(&mut self, line: &str) -> Result<(), ClientError> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            // A keep-alive, alone or at the head of a heartbeat event: told
            // apart when the block ends.
            self.comment = true;
            return Ok(());
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.id = Some(value.to_owned()),
            "event" => value.clone_into(&mut self.kind),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) -> Result<(), ClientError> {
        let id = self.id.take();
        let kind = std::mem::take(&mut self.kind);
        let data = std::mem::take(&mut self.data);
        let comment = std::mem::take(&mut self.comment);
        let bad = |what: &str, e: serde_json::Error| {
            ClientError::protocol(format!("watch `{what}` event: {e}"))
        };
        let event = match kind.as_str() {
            "record" => WatchEvent::Record {
                cursor: id.ok_or_else(|| ClientError::protocol("a record event without an id"))?,
                record: parse_record(&data)?,
            },
            "ready" => WatchEvent::Ready {
                cursor: serde_json::from_str::<ReadyJson>(&data)
                    .map_err(|e| bad("ready", e))?
                    .cursor,
            },
            "heartbeat" => WatchEvent::Heartbeat {
                origins: Some(
                    serde_json::from_str::<HeartbeatJson>(&data)
                        .map_err(|e| bad("heartbeat", e))?
                        .origins,
                ),
            },
            "" if comment && data.is_empty() => WatchEvent::Heartbeat { origins: None },
            "resync" => {
                let r: ResyncJson = serde_json::from_str(&data).map_err(|e| bad("resync", e))?;
                WatchEvent::Resync {
                    reason: r.reason,
                    message: r.message,
                }
            }
            // Unknown kinds are for newer clients.
            _ => return Ok(()),
        };
        self.ready.push_back(event);
        Ok(())
    }
}

/// An open `GET /v1/snapshot` stream.
pub struct SnapshotStream {
    response: reqwest::Response,
    lines: Lines,
    cursor: String,
    count: u64,
    done: bool,
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("cursor", &self.cursor)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl SnapshotStream {
    /// Reads the header line.
    pub(crate) async fn open(response: reqwest::Response) -> Result<SnapshotStream, ClientError> {
        let mut s = SnapshotStream {
            response,
            lines: Lines::default(),
            cursor: String::new(),
            count: 0,
            done: false,
        };
        let first = s
            .line()
            .await?
            .ok_or_else(|| ClientError::protocol("an empty snapshot"))?;
        let header: serde_json::Value = serde_json::from_str(&first)
            .map_err(|e| ClientError::protocol(format!("snapshot header: {e}")))?;
        s.cursor = header["cursor"]
            .as_str()
            .ok_or_else(|| ClientError::protocol("a snapshot header without its cursor"))?
            .to_owned();
        Ok(s)
    }

    async fn line(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(line) = self.lines.next_line()? {
                return Ok(Some(line));
            }
            match self.response.chunk().await? {
                Some(bytes) => self.lines.push(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// The cursor the snapshot was taken at: watch from it.
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The next record, or `None` after the last one. A snapshot cut short (a
    /// broken connection, or a read failure on the node) is an error, never a
    /// quiet end.
    pub async fn next(&mut self) -> Result<Option<Record>, ClientError> {
        if self.done {
            return Ok(None);
        }
        let line = self.line().await?.ok_or_else(|| {
            ClientError::protocol("the snapshot ended before its end line: it is incomplete")
        })?;
        // Records, by far the most lines, start with their id: parse them
        // straight into a record.
        if line.starts_with("{\"id\"") {
            self.count += 1;
            return parse_record(&line).map(Some);
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| ClientError::protocol(format!("snapshot line: {e}")))?;
        if value.get("end").is_some() {
            self.done = true;
            let count = value["count"].as_u64();
            if count != Some(self.count) {
                return Err(ClientError::protocol(format!(
                    "the snapshot says {count:?} records but held {}",
                    self.count
                )));
            }
            return Ok(None);
        }
        if let Some(code) = value.get("error") {
            self.done = true;
            return Err(ClientError::Api {
                status: 200,
                code: code.as_str().unwrap_or("unknown").to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        self.count += 1;
        record_from_value(value).map(Some)
    }

    /// Reads every remaining record.
    pub async fn collect(mut self) -> Result<(String, Vec<Record>), ClientError> {
        let mut records = Vec::new();
        while let Some(r) = self.next().await? {
            records.push(r);
        }
        Ok((self.cursor, records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str) -> reqwest::Response {
        reqwest::Response::from(http::Response::new(body.to_owned()))
    }

    const RECORD: &str = r#"{"id":"00000000000000ab-7","scope":"key","kid":"k1","expires_at":5,"reason":"","actor":"a","origin":"00000000000000ab","seq":7,"hlc":"1","revoked_at":0}"#;

    #[tokio::test]
    async fn watch_events_are_read_whatever_the_line_endings() {
        let body = format!(
            "id: e-1\nevent: ready\ndata: {{\"cursor\":\"e-1\",\"node\":\"n\"}}\n\n\
             :heartbeat\n\n\
             : heartbeat\nevent: heartbeat\ndata: {{\"origins\":[{ORIGIN}]}}\n\n\
             id: e-2\r\nevent: record\r\ndata: {RECORD}\r\n\r\n\
             event: future\ndata: {{}}\n\n\
             event: resync\ndata: {{\"reason\":\"unknown_epoch\",\"message\":\"m\"}}\n\n"
        );
        let mut w = WatchStream::new(response(&body));
        assert_eq!(
            w.next().await.unwrap(),
            Some(WatchEvent::Ready {
                cursor: "e-1".into()
            })
        );
        assert_eq!(
            w.next().await.unwrap(),
            Some(WatchEvent::Heartbeat { origins: None })
        );
        match w.next().await.unwrap() {
            Some(WatchEvent::Heartbeat {
                origins: Some(origins),
            }) => {
                assert_eq!(origins.len(), 1);
                assert_eq!(origins[0].name, "us-east");
                assert_eq!(origins[0].staleness_s, Some(0.4));
            }
            other => panic!("{other:?}"),
        }
        match w.next().await.unwrap() {
            Some(WatchEvent::Record { cursor, record }) => {
                assert_eq!(cursor, "e-2");
                assert_eq!(record.id.to_string(), "00000000000000ab-7");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            w.next().await.unwrap(),
            Some(WatchEvent::Resync {
                reason: "unknown_epoch".into(),
                message: "m".into()
            })
        );
        assert_eq!(w.next().await.unwrap(), None);
    }

    const ORIGIN: &str = r#"{"origin":"00000000000000ab","name":"us-east","region":"us-east","complete_through":1.5,"last_heard":1.5,"staleness_s":0.4}"#;

    #[tokio::test]
    async fn a_heartbeat_without_its_origins_is_an_error() {
        let body = ": heartbeat\nevent: heartbeat\ndata: {}\n\n";
        assert!(WatchStream::new(response(body)).next().await.is_err());
    }

    #[tokio::test]
    async fn a_record_event_without_an_id_is_an_error() {
        let body = format!("event: record\ndata: {RECORD}\n\n");
        assert!(WatchStream::new(response(&body)).next().await.is_err());
    }

    #[tokio::test]
    async fn a_snapshot_counts_only_when_it_is_complete() {
        let head = "{\"cursor\":\"e-3\",\"node\":\"n\"}\n";
        let full = format!("{head}{RECORD}\n{{\"end\":true,\"count\":1}}\n");
        let (cursor, records) = SnapshotStream::open(response(&full))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!((cursor.as_str(), records.len()), ("e-3", 1));

        for broken in [
            format!("{head}{RECORD}\n"),
            format!("{head}{RECORD}\n{{\"end\":true,\"count\":2}}\n"),
            format!("{head}{{\"error\":\"storage_failed\",\"message\":\"disk\"}}\n"),
        ] {
            let s = SnapshotStream::open(response(&broken)).await.unwrap();
            assert!(s.collect().await.is_err(), "{broken}");
        }
        assert!(SnapshotStream::open(response("")).await.is_err());
    }
}
