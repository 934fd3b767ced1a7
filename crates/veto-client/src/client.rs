//! [`Client`]: one async method per endpoint of a node's HTTP API.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use veto_core::request::RevokeRequest;
use veto_core::Record;

use crate::error::ClientError;
use crate::record::{record_from_value, RecordView};
use crate::stream::{SnapshotStream, WatchStream};
use veto_core::status::{PeerView as Peer, StatusView as Status};

use crate::types::{check_query, revoked_of, CheckItem, Claims, Revoked};
use veto_core::check::{CheckAnswer, CheckResults};
use veto_core::AuditQuery;

mod receipt;
pub use receipt::Waited;

/// How long a call that is not a stream may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one veto node. Cheap to clone: clones share connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), veto_client::ClientError> {
/// use veto_client::{Claims, Client, RevokeRequest, ScopeKind};
/// let node = Client::new("http://127.0.0.1:7400")?.with_admin_token("s3cret");
/// node.revoke(&RevokeRequest::new(ScopeKind::Token).iss("https://idp").jti("t-1")).await?;
/// let claims = Claims { iss: Some("https://idp".into()), jti: Some("t-1".into()), ..Claims::default() };
/// assert!(node.check(&claims).await?.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    admin: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the admin token.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("admin", &self.admin.is_some())
            .finish_non_exhaustive()
    }
}

/// The API's error body, `{"error": code, "message": message}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct RecordList {
    records: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct PeerList {
    peers: Vec<Peer>,
}

/// The error of a non-success answer, with the API's code and message when the
/// body has them.
async fn api_error(resp: Response) -> ClientError {
    let status = resp.status().as_u16();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return ClientError::Transport(e),
    };
    let body = serde_json::from_str::<ErrorBody>(&text).ok();
    let (code, message) = body.map_or((None, None), |b| (b.error, b.message));
    ClientError::Api {
        status,
        code: code.unwrap_or_else(|| format!("http_{status}")),
        // Without the API's message, the start of the body says most.
        message: message.unwrap_or_else(|| text.chars().take(512).collect()),
    }
}

async fn json<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::protocol(format!("answer JSON: {e}")))
}

fn records(list: RecordList) -> Result<Vec<Record>, ClientError> {
    list.records.into_iter().map(record_from_value).collect()
}

impl Client {
    /// A client of the node at `base_url`, such as `http://127.0.0.1:7400`
    /// or `https://veto.internal:7400` (whose certificate the system's roots
    /// must vouch for; see [`Client::with_ca_pem`] for a private CA).
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::with_http(base_url, Client::http_builder().build()?)
    }

    /// A client of the node at `base_url` that trusts the CA certificates in
    /// `ca_pem` (PEM, one or more) besides the system's roots: for a node
    /// whose `--api-tls-cert` a private CA signed.
    pub fn with_ca_pem(base_url: &str, ca_pem: &[u8]) -> Result<Client, ClientError> {
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| ClientError::Tls(format!("the CA is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::Tls("no PEM certificate in the CA".into()));
        }
        let builder = certs.into_iter().fold(Client::http_builder(), |b, cert| {
            b.add_root_certificate(cert)
        });
        Client::with_http(base_url, builder.build()?)
    }

    /// The `reqwest` settings [`Client::new`] starts from (a connect timeout,
    /// no Nagle delay): add TLS roots, a client certificate (for the writes
    /// of a node started with `--api-tls-client-ca`) or a proxy, and give
    /// the result to [`Client::with_http`].
    pub fn http_builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
    }

    /// A client that uses this `reqwest` client (for TLS roots, proxies and
    /// the like).
    pub fn with_http(base_url: &str, http: reqwest::Client) -> Result<Client, ClientError> {
        let url = reqwest::Url::parse(base_url).map_err(|_| ClientError::Url(base_url.into()))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(ClientError::Url(base_url.into()));
        }
        Ok(Client {
            http,
            base: url.as_str().trim_end_matches('/').to_owned(),
            admin: None,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sends this admin token with the calls that need it.
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Client {
        self.admin = Some(token.into());
        self
    }

    /// Sends this API token on every call that needs a role: the admin
    /// token, or a named token of the node's tokens file (a `read` token is
    /// what a [`crate::LocalCache`] needs for watch and snapshot). The same
    /// setting as [`Client::with_admin_token`], under the name that fits a
    /// token with fewer roles.
    pub fn with_token(self, token: impl Into<String>) -> Client {
        self.with_admin_token(token)
    }

    /// A request carrying the client's token, if it has one.
    fn with_token_if_any(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.admin {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Sets how long a call other than [`Client::watch`] and
    /// [`Client::snapshot`] may take (30 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.timeout)
    }

    fn admin(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        let token = self.admin.as_deref().ok_or(ClientError::NoAdminToken)?;
        Ok(self.request(method, path).bearer_auth(token))
    }

    async fn send(req: RequestBuilder) -> Result<Response, ClientError> {
        let resp = req.send().await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(api_error(resp).await)
        }
    }

    /// `POST /v1/revocations` (admin): stores one revocation durably and
    /// answers the record.
    pub async fn revoke(&self, req: &RevokeRequest) -> Result<Record, ClientError> {
        Record::try_from(self.revoke_view(req).await?).map_err(|e| ClientError::protocol(e.0))
    }

    /// [`Client::revoke`], answering the stored record in the JSON form the
    /// node wrote it.
    pub async fn revoke_view(&self, req: &RevokeRequest) -> Result<RecordView, ClientError> {
        let resp = Client::send(self.admin(Method::POST, "/v1/revocations")?.json(req)).await?;
        json(resp).await
    }

    /// `POST /v1/revocations/batch` (admin): at most 10,000, stored as one
    /// batch; the records come back in request order.
    pub async fn revoke_batch(&self, reqs: &[RevokeRequest]) -> Result<Vec<Record>, ClientError> {
        let req = self
            .admin(Method::POST, "/v1/revocations/batch")?
            .json(reqs);
        records(json(Client::send(req).await?).await?)
    }

    /// `GET /v1/revocations` (admin): the audit trail, newest first.
    pub async fn audit(&self, filter: &AuditQuery) -> Result<Vec<Record>, ClientError> {
        let req = self
            .admin(Method::GET, "/v1/revocations")?
            .query(&filter.to_params());
        records(json(Client::send(req).await?).await?)
    }

    /// `GET /v1/check` with claims: `None` when not revoked.
    pub async fn check(&self, claims: &Claims) -> Result<Option<Revoked>, ClientError> {
        let req = self
            .request(Method::GET, "/v1/check")
            .query(&check_query(claims));
        revoked_of(json::<CheckAnswer>(Client::send(req).await?).await?)
    }

    /// `GET /v1/check?token=`: a JWT (decoded by the node, signature not
    /// checked) or an opaque token.
    pub async fn check_token(&self, token: &str) -> Result<Option<Revoked>, ClientError> {
        let req = self
            .request(Method::GET, "/v1/check")
            .query(&[("token", token)]);
        revoked_of(json::<CheckAnswer>(Client::send(req).await?).await?)
    }

    /// `POST /v1/check`: many lookups at once, answered in order.
    pub async fn check_batch(
        &self,
        items: &[CheckItem],
    ) -> Result<Vec<Option<Revoked>>, ClientError> {
        let req = self.request(Method::POST, "/v1/check").json(items);
        let answers: CheckResults = json(Client::send(req).await?).await?;
        if answers.results.len() != items.len() {
            return Err(ClientError::protocol(format!(
                "{} answers to {} lookups",
                answers.results.len(),
                items.len()
            )));
        }
        answers.results.into_iter().map(revoked_of).collect()
    }

    /// `GET /v1/auth` with `Authorization: Bearer <token>`, as a gateway's
    /// subrequest: `true` when the node lets the token through, `false` when
    /// it answers 401 (revoked, or not a token it can read).
    pub async fn auth(&self, token: &str) -> Result<bool, ClientError> {
        let resp = self
            .request(Method::GET, "/v1/auth")
            .bearer_auth(token)
            .send()
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::UNAUTHORIZED => Ok(false),
            _ => Err(api_error(resp).await),
        }
    }

    /// `POST /oauth2/revoke` (admin), RFC 7009, with an optional
    /// `token_type_hint` (`access_token` or `refresh_token`).
    pub async fn oauth2_revoke(&self, token: &str, hint: Option<&str>) -> Result<(), ClientError> {
        let mut form = vec![("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        let req = self.admin(Method::POST, "/oauth2/revoke")?.form(&form);
        Client::send(req).await.map(drop)
    }

    /// `GET /v1/peers`, with the admin token when the client has one.
    pub async fn peers(&self) -> Result<Vec<Peer>, ClientError> {
        let mut req = self.request(Method::GET, "/v1/peers");
        if let Some(token) = &self.admin {
            req = req.bearer_auth(token);
        }
        let list: PeerList = json(Client::send(req).await?).await?;
        Ok(list.peers)
    }

    /// `POST /v1/peers` (admin): adds a peer at run time; the node persists it.
    pub async fn add_peer(&self, addr: &str, name: Option<&str>) -> Result<Peer, ClientError> {
        let body = serde_json::json!({"addr": addr, "name": name});
        json(Client::send(self.admin(Method::POST, "/v1/peers")?.json(&body)).await?).await
    }

    /// `DELETE /v1/peers/{name-or-addr}` (admin).
    pub async fn remove_peer(&self, name_or_addr: &str) -> Result<(), ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}/v1/peers", self.base))
            .map_err(|_| ClientError::Url(self.base.clone()))?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Url(self.base.clone()))?
            .push(name_or_addr);
        let token = self.admin.as_deref().ok_or(ClientError::NoAdminToken)?;
        let req = self
            .http
            .delete(url)
            .timeout(self.timeout)
            .bearer_auth(token);
        Client::send(req).await.map(drop)
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        json(Client::send(self.request(Method::GET, "/v1/status")).await?).await
    }

    /// `GET /healthz`: `Ok` when the process answers.
    pub async fn healthz(&self) -> Result<(), ClientError> {
        Client::send(self.request(Method::GET, "/healthz"))
            .await
            .map(drop)
    }

    /// `GET /readyz`: whether the node has loaded its state and serves
    /// lookups (`false` on 503).
    pub async fn readyz(&self) -> Result<bool, ClientError> {
        let resp = self.request(Method::GET, "/readyz").send().await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::SERVICE_UNAVAILABLE => Ok(false),
            _ => Err(api_error(resp).await),
        }
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        Ok(Client::send(self.request(Method::GET, "/metrics"))
            .await?
            .text()
            .await?)
    }

    /// `GET /v1/snapshot` (role `read`): every live record, with the cursor
    /// to watch from.
    pub async fn snapshot(&self) -> Result<SnapshotStream, ClientError> {
        let req = self.with_token_if_any(self.http.get(format!("{}/v1/snapshot", self.base)));
        SnapshotStream::open(Client::send(req).await?).await
    }

    /// `GET /v1/filter` (role `read`): the node's compact edge filter,
    /// decoded. A filter of another version, with a bad checksum or cut
    /// short is refused with [`ClientError::Protocol`] naming why.
    pub async fn filter(&self) -> Result<veto_filter::EdgeFilter, ClientError> {
        let req = self.with_token_if_any(self.request(Method::GET, "/v1/filter"));
        let body = Client::send(req).await?.bytes().await?;
        veto_filter::EdgeFilter::decode(&body)
            .map_err(|e| ClientError::Protocol(format!("the node's filter is refused: {e}")))
    }

    /// `GET /v1/watch` (role `read`): new records after `cursor` (or from now), with a
    /// heartbeat at least every `heartbeat` (the node's default is 15 s; it
    /// takes whole seconds from 1 to 60).
    pub async fn watch(
        &self,
        cursor: Option<&str>,
        heartbeat: Option<Duration>,
    ) -> Result<WatchStream, ClientError> {
        let mut query = Vec::new();
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        if let Some(h) = heartbeat {
            query.push(("heartbeat", h.as_secs().clamp(1, 60).to_string()));
        }
        let req = self.with_token_if_any(
            self.http
                .get(format!("{}/v1/watch", self.base))
                .query(&query),
        );
        Ok(WatchStream::new(Client::send(req).await?))
    }
}
