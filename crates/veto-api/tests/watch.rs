//! `GET /v1/watch` and `GET /v1/snapshot` over the in-memory node: order,
//! cursors, resuming, resync, the watcher limit, snapshot-then-watch, and
//! heartbeats carrying the watermarks.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{App, ADMIN, EPOCH, NODE};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use veto_api::tokens::{parse_tokens_file, tokens_file_entry};
use veto_api::{FeedConfig, Role, Roles, TokenSet, TokenTable};
use veto_core::{HybridClock, NodeId, RecordId, Revocation, Target};

/// One server-sent event, or a comment line.
#[derive(Debug, Clone, PartialEq)]
enum Sse {
    Event {
        id: Option<String>,
        kind: String,
        data: String,
    },
    Comment(String),
}

impl Sse {
    #[track_caller]
    fn record(&self) -> (String, Value) {
        match self {
            Sse::Event { id, kind, data } if kind == "record" => (
                id.clone().expect("a record event has an id"),
                serde_json::from_str(data).unwrap(),
            ),
            other => panic!("expected a record event, got {other:?}"),
        }
    }

    fn kind(&self) -> &str {
        match self {
            Sse::Event { kind, .. } => kind,
            Sse::Comment(_) => ":",
        }
    }

    fn data(&self) -> Value {
        match self {
            Sse::Event { data, .. } => serde_json::from_str(data).unwrap(),
            Sse::Comment(c) => panic!("comment {c:?} has no data"),
        }
    }
}

/// An open event stream from the router.
struct Stream {
    body: Body,
    buf: String,
    pending: VecDeque<Sse>,
}

impl Stream {
    async fn open(app: &App, uri: &str, last_event_id: Option<&str>) -> Stream {
        Stream::open_as(app, uri, last_event_id, ADMIN).await
    }

    async fn open_as(app: &App, uri: &str, last_event_id: Option<&str>, token: &str) -> Stream {
        let mut req = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = app
            .router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {uri}");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/event-stream",
            "GET {uri}"
        );
        Stream {
            body: resp.into_body(),
            buf: String::new(),
            pending: VecDeque::new(),
        }
    }

    /// The next event or comment, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("no event within 5 s");
            let frame = frame?;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                self.pending.push_back(parse_block(&block));
            }
        }
    }

    /// The next event that is not a comment or a heartbeat.
    async fn event(&mut self) -> Sse {
        loop {
            match self.next().await.expect("the stream ended") {
                Sse::Comment(_) => continue,
                e if e.kind() == "heartbeat" => continue,
                e => return e,
            }
        }
    }

    async fn records(&mut self, n: usize) -> Vec<(String, Value)> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.event().await.record());
        }
        out
    }
}

/// A block of only comments is a comment; a block with fields is an event,
/// whatever comments it also holds.
fn parse_block(block: &str) -> Sse {
    let (mut id, mut kind, mut data) = (None, "message".to_owned(), Vec::new());
    let (mut comment, mut fields) = (None, false);
    for line in block.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix(':') {
            comment.get_or_insert_with(|| c.trim().to_owned());
            continue;
        }
        fields = true;
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "event" => kind = value.to_owned(),
            "data" => data.push(value.to_owned()),
            _ => {}
        }
    }
    if let (Some(c), false) = (comment, fields) {
        return Sse::Comment(c);
    }
    Sse::Event {
        id,
        kind,
        data: data.join("\n"),
    }
}

fn cursor(n: u64) -> String {
    format!("{EPOCH:016x}-{n}")
}

async fn revoke_jti(app: &App, jti: &str) -> Value {
    app.revoke(json!({"scope": "token", "iss": "https://idp", "jti": jti}))
        .await
}

#[tokio::test]
async fn watch_sends_each_new_record_in_order_with_its_cursor() {
    let app = App::new();
    revoke_jti(&app, "before-watch").await;
    let mut watch = Stream::open(&app, "/v1/watch", None).await;
    let ready = watch.event().await;
    assert_eq!(ready.kind(), "ready");
    assert_eq!(ready.data()["cursor"], cursor(1));
    assert_eq!(ready.data()["node"], format!("{NODE:016x}"));

    let mut answers = Vec::new();
    for i in 0..3 {
        answers.push(revoke_jti(&app, &format!("j{i}")).await);
    }
    // A record replicated from a peer is an event too.
    let remote = Revocation {
        target: Target::Session {
            iss: None,
            sid: "s-remote".into(),
        },
        expires_at: common::START + common::DAY,
        reason: "peer".into(),
        actor: "admin".into(),
    }
    .into_record(
        RecordId {
            origin: NodeId::new(0xfeed),
            seq: 9,
        },
        HybridClock::new(NodeId::new(0xfeed), Duration::from_millis(500))
            .stamp(Duration::from_secs(common::START)),
    );
    app.backend.insert_remote(remote);

    let got = watch.records(4).await;
    for (i, (id, record)) in got.iter().enumerate() {
        assert_eq!(id, &cursor(i as u64 + 2));
        if i < 3 {
            // The same JSON as the revoke answer.
            assert_eq!(record, &answers[i]);
        }
    }
    assert_eq!(got[3].1["id"], "000000000000feed-9");
    assert_eq!(got[3].1["scope"], "session");
    assert_eq!(got[3].1["sid"], "s-remote");
}

#[tokio::test]
async fn a_cursor_resumes_with_exactly_the_records_after_it() {
    let app = App::new();
    for i in 0..5 {
        revoke_jti(&app, &format!("a{i}")).await;
    }
    let uri = format!("/v1/watch?cursor={}", cursor(2));
    let mut watch = Stream::open(&app, &uri, None).await;
    let ready = watch.event().await;
    assert_eq!(ready.data()["cursor"], cursor(2));
    revoke_jti(&app, "a5").await;
    let got = watch.records(4).await;
    let ids: Vec<_> = got.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, [cursor(3), cursor(4), cursor(5), cursor(6)]);
    let jtis: Vec<_> = got.iter().map(|(_, r)| r["jti"].clone()).collect();
    assert_eq!(jtis, ["a2", "a3", "a4", "a5"]);

    // Last-Event-ID, as a reconnecting EventSource sends it, wins over the
    // cursor in its original URL.
    let mut watch = Stream::open(&app, &uri, Some(&cursor(5))).await;
    assert_eq!(watch.event().await.data()["cursor"], cursor(5));
    let (id, record) = watch.event().await.record();
    assert_eq!(
        (id.as_str(), &record["jti"]),
        (cursor(6).as_str(), &json!("a5"))
    );

    // At the head: nothing is repeated, the next record comes next.
    let mut watch = Stream::open(&app, &format!("/v1/watch?cursor={}", cursor(6)), None).await;
    watch.event().await;
    revoke_jti(&app, "a6").await;
    assert_eq!(watch.event().await.record().0, cursor(7));
}

#[tokio::test]
async fn a_cursor_that_cannot_be_resumed_gets_resync_and_the_stream_ends() {
    let app = App::with_feed(FeedConfig {
        ring: 4,
        ..FeedConfig::default()
    });
    for i in 0..10 {
        revoke_jti(&app, &format!("r{i}")).await;
    }
    let other_epoch = format!("{:016x}-3", EPOCH ^ 1);
    for (c, reason) in [
        (cursor(5), "too_far_behind"),
        (other_epoch, "unknown_epoch"),
        (cursor(11), "ahead"),
    ] {
        let mut watch = Stream::open(&app, &format!("/v1/watch?cursor={c}"), None).await;
        let e = watch.event().await;
        assert_eq!(e.kind(), "resync", "{c}");
        let body = e.data();
        assert_eq!(body["reason"], reason, "{c}");
        assert_eq!(body["cursor"], cursor(10));
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("GET /v1/snapshot"),
            "{body}"
        );
        assert_eq!(watch.next().await, None, "the stream ends after resync");
    }
    // The oldest cursor the ring still covers resumes.
    let mut watch = Stream::open(&app, &format!("/v1/watch?cursor={}", cursor(6)), None).await;
    watch.event().await;
    let ids: Vec<_> = watch.records(4).await.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, [cursor(7), cursor(8), cursor(9), cursor(10)]);
}

#[tokio::test]
async fn a_watcher_behind_the_live_channel_catches_up_from_the_ring() {
    let app = App::with_feed(FeedConfig {
        channel: 2,
        ..FeedConfig::default()
    });
    let mut watch = Stream::open(&app, "/v1/watch", None).await;
    watch.event().await;
    for i in 0..50 {
        revoke_jti(&app, &format!("l{i}")).await;
    }
    let got = watch.records(50).await;
    for (i, (id, record)) in got.iter().enumerate() {
        assert_eq!(id, &cursor(i as u64 + 1));
        assert_eq!(record["jti"], format!("l{i}"));
    }
}

#[tokio::test]
async fn a_watcher_the_ring_has_left_behind_gets_resync() {
    let app = App::with_feed(FeedConfig {
        channel: 2,
        ring: 5,
        ..FeedConfig::default()
    });
    let mut watch = Stream::open(&app, "/v1/watch", None).await;
    watch.event().await;
    for i in 0..20 {
        revoke_jti(&app, &format!("s{i}")).await;
    }
    let e = watch.event().await;
    assert_eq!(e.kind(), "resync");
    assert_eq!(e.data()["reason"], "too_far_behind");
    assert_eq!(watch.next().await, None);
}

#[tokio::test]
async fn heartbeats_come_at_once_then_every_interval_with_the_watermarks() {
    let app = App::new();
    app.backend
        .set_staleness(&[("eu-1", Some(0.0)), ("us-1", Some(1.5)), ("ap-1", None)]);
    let mut watch = Stream::open(&app, "/v1/watch?heartbeat=1", None).await;
    assert_eq!(watch.next().await.unwrap().kind(), "ready");
    // The first comes right after `ready`, so a client knows the
    // watermarks from the start.
    let first = tokio::time::timeout(Duration::from_millis(500), watch.next())
        .await
        .expect("a heartbeat at once")
        .unwrap();
    let Sse::Event { id, kind, data } = &first else {
        panic!("{first:?}")
    };
    assert_eq!((id, kind.as_str()), (&None, "heartbeat"));
    let origins: Value = serde_json::from_str(data).unwrap();
    let origins = origins["origins"].as_array().unwrap().clone();
    assert_eq!(origins.len(), 3);
    assert_eq!(origins[1]["name"], "us-1");
    assert_eq!(origins[1]["staleness_s"], 1.5);
    assert_eq!(origins[2]["staleness_s"], Value::Null);
    assert_eq!(origins[0]["region"], "eu-1-region");

    // Then one a second, with the watermarks as they are then.
    app.backend.set_staleness(&[("eu-1", Some(0.2))]);
    let started = std::time::Instant::now();
    let next = watch.next().await.unwrap();
    assert_eq!(next.kind(), "heartbeat");
    assert!(started.elapsed() > Duration::from_millis(700));
    assert_eq!(next.data()["origins"][0]["staleness_s"], 0.2);
}

#[tokio::test]
async fn heartbeats_keep_coming_while_records_flow() {
    let app = App::new();
    let mut watch = Stream::open(&app, "/v1/watch?heartbeat=1", None).await;
    assert_eq!(watch.next().await.unwrap().kind(), "ready");
    assert_eq!(watch.next().await.unwrap().kind(), "heartbeat");
    let started = std::time::Instant::now();
    let mut beats = 0;
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(2_300) {
        revoke_jti(&app, &format!("busy-{i}")).await;
        i += 1;
        // Read all that is there: a record, and a heartbeat when one is due.
        loop {
            match tokio::time::timeout(Duration::from_millis(20), watch.next()).await {
                Ok(Some(e)) if e.kind() == "heartbeat" => beats += 1,
                Ok(Some(e)) => assert_eq!(e.kind(), "record"),
                Ok(None) => panic!("the stream ended"),
                Err(_) => break,
            }
        }
    }
    assert!(beats >= 2, "{beats} heartbeats among {i} records");
}

#[tokio::test]
async fn watchers_beyond_the_limit_are_refused_until_one_leaves() {
    let app = App::with_feed(FeedConfig {
        max_watchers: 2,
        ..FeedConfig::default()
    });
    let first = Stream::open(&app, "/v1/watch", None).await;
    let _second = Stream::open(&app, "/v1/watch", None).await;
    let m = app
        .admin_get("/v1/watch")
        .await
        .error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(m.contains("2 watch streams"), "{m}");
    drop(first);
    let _third = Stream::open(&app, "/v1/watch", None).await;
}

#[tokio::test]
async fn malformed_watch_requests_are_refused() {
    let app = App::new();
    for (uri, word) in [
        ("/v1/watch?cursor=abc", "malformed cursor"),
        ("/v1/watch?cursor=5eed000000000001-x", "malformed cursor"),
        ("/v1/watch?heartbeat=0", "`heartbeat`"),
        ("/v1/watch?heartbeat=61", "`heartbeat`"),
        ("/v1/watch?since=5", "unknown query parameter"),
    ] {
        let m = app
            .admin_get(uri)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(m.contains(word), "{uri}: {m}");
    }
    let req = Request::get("/v1/watch")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header("last-event-id", "nope")
        .body(Body::empty())
        .unwrap();
    let m = app
        .send(req)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(m.contains("Last-Event-ID"), "{m}");
}

/// Reads a whole snapshot: its cursor and its records.
fn parse_snapshot(body: &[u8]) -> (String, Vec<Value>) {
    let text = std::str::from_utf8(body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cursor = lines[0]["cursor"].as_str().unwrap().to_owned();
    let last = lines.last().unwrap();
    assert_eq!(last["end"], true, "the snapshot ends with its end line");
    let records = lines[1..lines.len() - 1].to_vec();
    assert_eq!(last["count"], records.len());
    (cursor, records)
}

#[tokio::test]
async fn snapshot_then_watch_from_its_cursor_gives_every_record_exactly_once() {
    let app = App::new();
    let mut all = BTreeSet::new();
    for i in 0..10 {
        all.insert(revoke_jti(&app, &format!("p{i}")).await["id"].to_string());
    }
    // Take the snapshot's head, then let records arrive before its body is read.
    let resp = app
        .router
        .clone()
        .oneshot(
            Request::get("/v1/snapshot")
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let header_cursor = resp.headers()["veto-cursor"].to_str().unwrap().to_owned();
    for i in 10..15 {
        all.insert(revoke_jti(&app, &format!("p{i}")).await["id"].to_string());
    }
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let (cursor, records) = parse_snapshot(&body);
    assert_eq!(cursor, header_cursor);
    assert_eq!(cursor, self::cursor(10));

    let mut seen: BTreeSet<String> = records.iter().map(|r| r["id"].to_string()).collect();
    assert_eq!(seen.len(), records.len(), "the snapshot repeats no record");
    let mut watch = Stream::open(&app, &format!("/v1/watch?cursor={cursor}"), None).await;
    watch.event().await;
    for (_, record) in watch.records(5).await {
        assert!(
            seen.insert(record["id"].to_string()),
            "{record} arrived twice"
        );
    }
    assert_eq!(seen, all);
    // A snapshot record has the revoke answer's shape.
    let first = app.backend.records()[0].id.to_string();
    let r = records.iter().find(|r| r["id"] == first).unwrap();
    assert_eq!(r["iss"], "https://idp");
    assert_eq!(r["scope"], "token");
}

#[tokio::test]
async fn an_empty_node_snapshots_at_cursor_zero() {
    let app = App::new();
    let a = app.admin_get("/v1/snapshot").await;
    assert_eq!(a.status, StatusCode::OK);
    let (cursor, records) = parse_snapshot(&a.body);
    assert_eq!(cursor, self::cursor(0));
    assert!(records.is_empty());
    // Watching from cursor 0 sees the first record.
    let mut watch = Stream::open(&app, &format!("/v1/watch?cursor={cursor}"), None).await;
    watch.event().await;
    revoke_jti(&app, "first").await;
    assert_eq!(watch.event().await.record().0, self::cursor(1));
}

#[tokio::test]
async fn watch_and_snapshot_need_a_token_and_show_a_read_token_only_what_enforcement_needs() {
    let tokens = format!(
        "{}{}{}",
        tokens_file_entry("edge", Roles::of(&[Role::Read]), "read-token"),
        tokens_file_entry("auditor", Roles::of(&[Role::Audit]), "audit-token"),
        tokens_file_entry("soc-bot", Roles::of(&[Role::Revoke]), "revoke-token"),
    );
    let table = TokenTable::new(Some(ADMIN), parse_tokens_file(&tokens).unwrap()).unwrap();
    let app = App::with_config(|c| c.with_tokens(TokenSet::new(table)));
    for uri in ["/v1/watch", "/v1/snapshot"] {
        app.get(uri)
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthorized");
        app.call(
            axum::http::Method::GET,
            uri,
            Some("revoke-token"),
            Vec::new(),
        )
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    }
    let mut read = Stream::open_as(&app, "/v1/watch", None, "read-token").await;
    let mut audit = Stream::open_as(&app, "/v1/watch", None, "audit-token").await;
    read.event().await;
    audit.event().await;
    app.revoke(json!({"scope": "token", "iss": "https://idp", "jti": "leak", "reason": "case 4411", "actor": "alice"}))
        .await;

    let (_, slim) = read.event().await.record();
    assert_eq!(slim["jti"], "leak");
    assert!(slim["expires_at"].is_u64());
    for field in ["reason", "actor", "on_behalf_of"] {
        assert!(
            slim.get(field).is_none(),
            "a read token sees no {field}: {slim}"
        );
    }
    let (_, full) = audit.event().await.record();
    assert_eq!(full["reason"], "case 4411");
    assert_eq!(full["actor"], "admin");
    assert_eq!(full["on_behalf_of"], "alice");

    let snap = app
        .call(
            axum::http::Method::GET,
            "/v1/snapshot",
            Some("read-token"),
            Vec::new(),
        )
        .await;
    assert_eq!(snap.status, StatusCode::OK);
    let (_, records) = parse_snapshot(&snap.body);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["jti"], "leak");
    assert!(records[0].get("reason").is_none() && records[0].get("actor").is_none());
    // What a read token gets still reads back as a record.
    let view: veto_core::view::RecordView = serde_json::from_value(records[0].clone()).unwrap();
    assert!(veto_core::Record::try_from(view).is_ok());
}
