//! Invariants of `POST /v1/events`, which receives Security Event Tokens
//! (RFC 8417, RFC 8935): the JWS parsing, the SET's claims and the mapping of
//! its events to revocations, driven through veto-api's real router with an
//! in-memory backend.
//!
//! The SET verifier is not public, so the target sends HTTP requests. An input
//! is either a raw body (first byte even), or a JWS header and claims (first
//! byte odd, split at the first NUL) that the target signs with the
//! transmitter's Ed25519 key, so that the fuzzer reaches what comes after the
//! signature check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tower::ServiceExt as _;
use veto_api::{
    ApiConfig, Backend, BackendError, NodeInfo, PeerView, Revoked, StatusView, Transmitter,
};
use veto_core::{AuditQuery, Check, Hlc, NodeId, Record, RecordId, Revocation};

/// The transmitter's issuer, which a SET's `iss` must name.
pub const ISSUER: &str = "https://idp.example";
/// The audience the transmitter's SETs must carry.
pub const AUDIENCE: &str = "https://veto.example";
/// The `kid` of the transmitter's key.
pub const KID: &str = "fuzz-ed25519";
/// The receiver's clock, in Unix seconds.
pub const NOW: u64 = 1_800_000_000;

/// The transmitter's Ed25519 key, PKCS#8 DER (a test key, made for this).
const ED25519_PKCS8: &str =
    "302e020100300506032b657004220420107b37fff4a842e95df4faa91a698affe6866e3c37a26e4a3e22532fdaf26bcf";
/// Its public half, base64url (the JWK's `x`).
const ED25519_X: &str = "-GlYIgkeFlOjeLMudCPk5nnJ9Sslp0ilKUMUeGPAMMc";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    key: EncodingKey,
    transmitter: Transmitter,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let der = hex::decode(ED25519_PKCS8).unwrap_or_default();
        let jwks = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": KID, "x": ED25519_X,
        }]});
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            key: EncodingKey::from_ed_der(&der),
            transmitter: Transmitter::new(ISSUER, AUDIENCE, &jwks)
                .unwrap_or_else(|e| panic!("{e}")),
        }
    })
}

/// Signs `header.claims` (the bytes as they are, base64url-encoded) with the
/// transmitter's key.
pub fn sign(header: &[u8], claims: &[u8]) -> String {
    let f = fixture();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &f.key, Algorithm::EdDSA)
        .unwrap_or_else(|e| panic!("signing: {e}"));
    format!("{input}.{sig}")
}

/// The JWS header of a well-formed SET.
pub fn set_header() -> Value {
    json!({"alg": "EdDSA", "typ": "secevent+jwt", "kid": KID})
}

/// A backend that stores nothing and checks what it is asked to store.
#[derive(Default)]
struct Sink {
    seq: AtomicU64,
    stored: Mutex<Vec<Revocation>>,
}

#[async_trait::async_trait]
impl Backend for Sink {
    fn node(&self) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(1),
            name: "fuzz".into(),
            region: "here".into(),
        }
    }

    async fn revoke(&self, batch: Vec<Revocation>) -> Result<Vec<Record>, BackendError> {
        let mut out = Vec::with_capacity(batch.len());
        for rev in &batch {
            // A SET never makes a record the API would refuse.
            if let Err(e) = rev.target.validate() {
                panic!("a SET produced an invalid target {:?}: {e}", rev.target);
            }
            assert!(!rev.actor.is_empty() && rev.actor == ISSUER);
            let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
            let id = RecordId {
                origin: NodeId::new(1),
                seq,
            };
            out.push(
                rev.clone()
                    .into_record(id, Hlc::from_unix(Duration::from_secs(NOW))),
            );
        }
        if let Ok(mut s) = self.stored.lock() {
            s.extend(batch);
        }
        Ok(out)
    }

    fn check(&self, _: &Check<'_>) -> Option<Revoked> {
        None
    }

    async fn audit(&self, _: AuditQuery) -> Result<Vec<Record>, BackendError> {
        Ok(Vec::new())
    }

    fn status(&self) -> StatusView {
        StatusView {
            node: self.node(),
            revocations: 0,
            digest: String::new(),
            peers: Vec::new(),
            clock: Default::default(),
            storage: Default::default(),
            origins: Vec::new(),
        }
    }

    fn ready(&self) -> bool {
        true
    }

    fn peers(&self) -> Vec<PeerView> {
        Vec::new()
    }

    async fn add_peer(&self, _: String, _: Option<String>) -> Result<PeerView, BackendError> {
        Err(BackendError::Invalid("not here".into()))
    }

    async fn remove_peer(&self, _: &str) -> Result<(), BackendError> {
        Err(BackendError::NotFound("not here".into()))
    }
}

/// The error codes of RFC 8935 §2.4.
const SET_ERRORS: [&str; 5] = [
    "invalid_request",
    "invalid_key",
    "invalid_issuer",
    "invalid_audience",
    "authentication_failed",
];

/// Posts `body` to `/v1/events` on a fresh node and checks the answer: 202
/// with an empty body, or 400/413 with an RFC 8935 error; never a panic or a
/// server error. Returns the status and how many revocations were stored.
pub fn check_set_body(body: Vec<u8>) -> (StatusCode, usize) {
    let f = fixture();
    let sink = Arc::new(Sink::default());
    let mut config = ApiConfig::new("fuzz-admin-token");
    config.clock = Arc::new(|| NOW);
    config.transmitters = vec![f.transmitter.clone()];
    let app = veto_api::router(Arc::clone(&sink) as Arc<dyn Backend>, config);
    let request = Request::post(veto_api::events::EVENTS_PATH)
        .header("content-type", veto_api::events::SET_MEDIA_TYPE)
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, bytes) = f.runtime.block_on(async {
        let resp = app.oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("reading the answer: {e}"));
        (status, bytes)
    });
    let stored = sink.stored.lock().map(|s| s.len()).unwrap_or(0);
    match status {
        StatusCode::ACCEPTED => assert!(bytes.is_empty()),
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
            assert_eq!(stored, 0, "a refused SET stored records");
            let v: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("error body is not JSON: {e}"));
            let err = v["err"].as_str().unwrap_or_default();
            assert!(SET_ERRORS.contains(&err), "unknown err {v}");
            assert!(
                v["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{v}"
            );
        }
        other => panic!(
            "POST /v1/events answered {other}: {}",
            String::from_utf8_lossy(&bytes)
        ),
    }
    (status, stored)
}

/// The fuzz input: a raw body, or a header and claims to sign (see the module
/// docs).
pub fn check_set_input(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        check_set_body(Vec::new());
        return;
    };
    if mode % 2 == 0 {
        check_set_body(rest.to_vec());
        return;
    }
    let (header, claims) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b""[..], rest),
    };
    let header = if header.is_empty() {
        set_header().to_string().into_bytes()
    } else {
        header.to_vec()
    };
    check_set_body(sign(&header, claims).into_bytes());
}

/// A fuzz input that signs these claims under a well-formed header.
pub fn signed_input(claims: &Value) -> Vec<u8> {
    let mut v = vec![1u8];
    v.extend(set_header().to_string().into_bytes());
    v.push(0);
    v.extend(claims.to_string().into_bytes());
    v
}
