//! An in-memory node behind the API, built from veto-core's real parts (the
//! replicated set, the lookup index and the hybrid clock), and helpers that drive
//! the router without a socket.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use veto_api::{
    ApiConfig, Backend, BackendError, Feed, FeedConfig, NodeInfo, PeerView, RecordChunks, Revoked,
    StatusView,
};
use veto_core::receipt::OriginView;
use veto_core::{
    AuditQuery, Check, HybridClock, LookupIndex, NodeId, Record, RecordId, Revocation,
    RevocationSet,
};

pub(crate) const ADMIN: &str = "s3cret-admin-token";
pub(crate) const NODE: u64 = 0xabc;
pub(crate) const START: u64 = 1_700_000_000;
pub(crate) const DAY: u64 = 86_400;
/// The epoch of the in-memory node's watch feed.
pub(crate) const EPOCH: u64 = 0x5eed_0000_0000_0001;

struct Inner {
    set: RevocationSet,
    index: LookupIndex,
    seq: u64,
    peers: Vec<PeerView>,
}

/// A node that keeps everything in memory.
pub(crate) struct MemoryBackend {
    node: NodeInfo,
    clock: HybridClock,
    /// The wall clock shared with the router, in Unix seconds.
    pub(crate) now: Arc<AtomicU64>,
    inner: Mutex<Inner>,
    pub(crate) ready: AtomicBool,
    /// When set, `revoke` fails as a storage failure would, storing nothing.
    pub(crate) fail_storage: AtomicBool,
    /// How many times `revoke` was called.
    pub(crate) revoke_calls: AtomicU64,
    /// Every record that becomes durable here is published to it.
    pub(crate) feed: Arc<Feed>,
    /// What `origins` answers: set by a test to make origins stale.
    pub(crate) origins: Mutex<Vec<OriginView>>,
    /// How many times `origins` was called.
    pub(crate) origins_calls: AtomicU64,
}

impl MemoryBackend {
    pub(crate) fn new(now: Arc<AtomicU64>) -> MemoryBackend {
        MemoryBackend::with_feed(now, FeedConfig::default())
    }

    pub(crate) fn with_feed(now: Arc<AtomicU64>, feed: FeedConfig) -> MemoryBackend {
        MemoryBackend {
            node: NodeInfo {
                id: NodeId::new(NODE),
                name: "eu-1".into(),
                region: "eu-west".into(),
            },
            clock: HybridClock::new(NodeId::new(NODE), Duration::from_millis(500)),
            now,
            inner: Mutex::new(Inner {
                set: RevocationSet::new(),
                index: LookupIndex::new(),
                seq: 0,
                peers: Vec::new(),
            }),
            ready: AtomicBool::new(true),
            fail_storage: AtomicBool::new(false),
            revoke_calls: AtomicU64::new(0),
            feed: Arc::new(Feed::new(EPOCH, feed)),
            origins: Mutex::new(Vec::new()),
            origins_calls: AtomicU64::new(0),
        }
    }

    /// Sets the origins' staleness, by name: `None` is an origin of which
    /// nothing is known.
    pub(crate) fn set_staleness(&self, origins: &[(&str, Option<f64>)]) {
        let now = self.now.load(Ordering::SeqCst) as f64;
        *self.origins.lock().unwrap() = origins
            .iter()
            .enumerate()
            .map(|(i, &(name, staleness_s))| OriginView {
                origin: format!("{:016x}", i + 1),
                name: name.into(),
                region: format!("{name}-region"),
                complete_through: staleness_s.map(|s| now - s),
                last_heard: Some(now),
                staleness_s,
            })
            .collect();
    }

    /// Live records.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().unwrap().set.len()
    }

    /// Every live record, by id.
    pub(crate) fn records(&self) -> Vec<Record> {
        self.inner.lock().unwrap().set.iter().cloned().collect()
    }

    /// Whether no peer is configured.
    pub(crate) fn peers_is_empty(&self) -> bool {
        self.inner.lock().unwrap().peers.is_empty()
    }

    /// Stores a record made elsewhere, as replication would.
    pub(crate) fn insert_remote(&self, record: Record) {
        let mut inner = self.inner.lock().unwrap();
        inner.index.insert_record(&record).unwrap();
        inner.set.insert(record.clone());
        // Published under the lock, as the node publishes only what a snapshot
        // can already read.
        self.feed.publish(&[record]);
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn node(&self) -> NodeInfo {
        self.node.clone()
    }

    async fn revoke(&self, batch: Vec<Revocation>) -> Result<Vec<Record>, BackendError> {
        self.revoke_calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_storage.load(Ordering::SeqCst) {
            return Err(BackendError::Storage("disk full".into()));
        }
        let now = Duration::from_secs(self.now.load(Ordering::SeqCst));
        let mut inner = self.inner.lock().unwrap();
        let mut out = Vec::with_capacity(batch.len());
        for rev in batch {
            inner.seq += 1;
            let id = RecordId {
                origin: self.node.id,
                seq: inner.seq,
            };
            let record = rev.into_record(id, self.clock.stamp(now));
            inner
                .index
                .insert_record(&record)
                .map_err(|e| BackendError::Invalid(e.to_string()))?;
            inner.set.insert(record.clone());
            out.push(record);
        }
        self.feed.publish(&out);
        Ok(out)
    }

    fn check(&self, check: &Check<'_>) -> Option<Revoked> {
        let inner = self.inner.lock().unwrap();
        let hit = inner.index.check(check)?;
        let record = inner.set.get(hit.record)?;
        Some(Revoked {
            scope: hit.scope,
            id: record.id.to_string(),
            reason: record.reason.clone(),
            revoked_at: record.revoked_at(),
        })
    }

    async fn audit(&self, query: AuditQuery) -> Result<Vec<Record>, BackendError> {
        let inner = self.inner.lock().unwrap();
        let mut hits: Vec<Record> = inner
            .set
            .iter()
            .filter(|r| query.matches(r))
            .cloned()
            .collect();
        hits.sort_by(|a, b| b.hlc.cmp(&a.hlc).then(b.id.cmp(&a.id)));
        hits.truncate(query.limit);
        Ok(hits)
    }

    fn status(&self) -> StatusView {
        let inner = self.inner.lock().unwrap();
        StatusView {
            node: self.node.clone(),
            revocations: inner.set.len() as u64,
            digest: inner.set.digest().to_hex(),
            peers: inner.peers.clone(),
            clock: veto_api::ClockView {
                state: "unconfirmed".into(),
                ..Default::default()
            },
            storage: veto_api::StorageView::default(),
            origins: Vec::new(),
        }
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn peers(&self) -> Vec<PeerView> {
        self.inner.lock().unwrap().peers.clone()
    }

    async fn add_peer(&self, addr: String, name: Option<String>) -> Result<PeerView, BackendError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.peers.iter().any(|p| p.addr == addr) {
            return Err(BackendError::Conflict(format!(
                "peer {addr} already exists"
            )));
        }
        let peer = PeerView {
            name,
            listed_as: None,
            addr,
            state: "connecting".into(),
            lag: 0,
            rtt_ms: None,
            cwnd_bytes: None,
            lost_packets: None,
            last_contact: None,
        };
        inner.peers.push(peer.clone());
        Ok(peer)
    }

    fn feed(&self) -> Option<Arc<Feed>> {
        Some(Arc::clone(&self.feed))
    }

    fn origins(&self) -> Vec<OriginView> {
        self.origins_calls.fetch_add(1, Ordering::SeqCst);
        self.origins.lock().unwrap().clone()
    }

    fn snapshot_records(&self) -> Result<RecordChunks, BackendError> {
        let records = self.records();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for chunk in records.chunks(3) {
                if tx.send(Ok(chunk.to_vec())).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn remove_peer(&self, name_or_addr: &str) -> Result<(), BackendError> {
        let mut inner = self.inner.lock().unwrap();
        let before = inner.peers.len();
        inner
            .peers
            .retain(|p| p.addr != name_or_addr && p.name.as_deref() != Some(name_or_addr));
        if inner.peers.len() == before {
            return Err(BackendError::NotFound(format!("no peer {name_or_addr}")));
        }
        Ok(())
    }
}

/// A router over a fresh in-memory node, with a pinned clock.
pub(crate) struct App {
    pub(crate) router: Router,
    pub(crate) backend: Arc<MemoryBackend>,
    pub(crate) now: Arc<AtomicU64>,
}

/// What the router answered.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the error shape and returns the message.
    #[track_caller]
    pub(crate) fn error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.headers.get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let v = self.json();
        assert_eq!(v["error"], code, "{v}");
        v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {v}"))
            .to_owned()
    }
}

impl App {
    pub(crate) fn new() -> App {
        App::with_config(|c| c)
    }

    pub(crate) fn with_config(f: impl FnOnce(ApiConfig) -> ApiConfig) -> App {
        App::build(FeedConfig::default(), f)
    }

    /// A router whose node's watch feed has these limits.
    pub(crate) fn with_feed(feed: FeedConfig) -> App {
        App::build(feed, |c| c)
    }

    fn build(feed: FeedConfig, f: impl FnOnce(ApiConfig) -> ApiConfig) -> App {
        let now = Arc::new(AtomicU64::new(START));
        let backend = Arc::new(MemoryBackend::with_feed(now.clone(), feed));
        let clock = now.clone();
        let config = f(ApiConfig::new(ADMIN).with_clock(move || clock.load(Ordering::SeqCst)));
        App {
            router: veto_api::router(backend.clone(), config),
            backend,
            now,
        }
    }

    pub(crate) fn advance(&self, secs: u64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = auth {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    pub(crate) async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None, Vec::new()).await
    }

    pub(crate) async fn admin_get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, Some(ADMIN), Vec::new()).await
    }

    pub(crate) async fn admin_post(&self, uri: &str, body: &Value) -> Answer {
        self.call(
            Method::POST,
            uri,
            Some(ADMIN),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Revokes and asserts 201; returns the record JSON.
    pub(crate) async fn revoke(&self, body: Value) -> Value {
        let a = self.admin_post("/v1/revocations", &body).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        a.json()
    }

    /// `GET /v1/check` with query pairs; asserts 200 and returns the answer.
    pub(crate) async fn check(&self, pairs: &[(&str, &str)]) -> Value {
        let a = self.get(&check_uri(pairs)).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        a.json()
    }

    pub(crate) async fn is_revoked(&self, pairs: &[(&str, &str)]) -> bool {
        self.check(pairs).await["revoked"].as_bool().unwrap()
    }
}

pub(crate) fn check_uri(pairs: &[(&str, &str)]) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/v1/check?{q}")
}

/// An unsigned JWT with these header and claims.
pub(crate) fn jwt(header: Value, claims: Value) -> String {
    veto_core::jwt::encode_unsigned(&header, &claims)
}
