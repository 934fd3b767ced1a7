//! [`Gateway`]: requests to a route behind an API gateway (nginx, Envoy,
//! Caddy, ...) that asks a veto node's `/v1/auth` before passing a request
//! on, made the way the gateway's own clients make them. For probes that
//! measure enforcement end to end, through the front door.

use std::time::Duration;

use reqwest::{redirect, Url};

use crate::error::ClientError;

/// How long a request to the gateway may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of an answer's body is read before the connection is let go:
/// reading a short body lets the connection be reused, and a route's body
/// says nothing about whether the request was let through.
const MAX_BODY_READ: usize = 64 * 1024;

/// One route behind a gateway. Cheap to clone: clones share connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), veto_client::ClientError> {
/// use veto_client::Gateway;
/// let front = Gateway::new("http://127.0.0.1:8000/api/ping")?;
/// let status = front.get_with_bearer("eyJ...").await?;
/// println!("the gateway answered {status}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Gateway {
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
}

impl Gateway {
    /// The route at `url`, such as `http://127.0.0.1:8000/api/ping`: the
    /// whole URL is requested as given, path and query included.
    pub fn new(url: &str) -> Result<Gateway, ClientError> {
        let parsed = Url::parse(url).map_err(|_| ClientError::Url(url.into()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
            return Err(ClientError::Url(url.into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // A gateway may send a refused client to a login page with a
            // redirect; following it would read the login page's 200 as the
            // request being let through.
            .redirect(redirect::Policy::none())
            .build()?;
        Ok(Gateway {
            http,
            url: parsed,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets how long one request may take (30 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Gateway {
        self.timeout = timeout;
        self
    }

    /// The route's URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// `GET` the route with `Authorization: Bearer <token>` and answers the
    /// HTTP status. Every status is an answer, refusals included; only
    /// failing to get one (no connection, a timeout) is an error.
    pub async fn get_with_bearer(&self, token: &str) -> Result<u16, ClientError> {
        let mut resp = self
            .http
            .get(self.url.clone())
            .bearer_auth(token)
            .timeout(self.timeout)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let mut read = 0;
        // A body that breaks off does not change the status already received.
        while let Ok(Some(chunk)) = resp.chunk().await {
            read += chunk.len();
            if read > MAX_BODY_READ {
                break;
            }
        }
        Ok(status)
    }

    /// Whether the gateway lets a request carrying this bearer token through
    /// (a 2xx answer); any other status is a refusal.
    pub async fn passes(&self, token: &str) -> Result<bool, ClientError> {
        let status = self.get_with_bearer(token).await?;
        Ok((200..300).contains(&status))
    }
}
