//! One HTTP connection: hyper's HTTP/1 (or, over TLS, h2) state machine,
//! driven under the header, body, idle and write timeouts, with every
//! request passed through the client-certificate check and the rate limits
//! to the router.
//!
//! Over TLS the handshake has the header timeout, and the timeouts then
//! count from its end. Reads are timed above TLS (bytes of requests, not of
//! records) and writes below it (whether the client takes what is sent). On
//! h2 a request's headers arrive in whole frames that hyper holds to a size
//! limit, and other frames (pings, window updates) come between requests,
//! so bytes read do not start the header timeout there: between requests
//! such a connection has the idle timeout.

use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use bytes::Bytes;
use hyper::body::Body as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::activity::{self, Activity, Answer, Tracked};
use super::client_cert::{self, TlsClient};
use super::linger::Lingering;
use super::rate::RateLimiter;
use super::HttpLimits;

/// What every connection shares.
pub(super) struct Shared {
    pub(super) app: Router,
    /// The routes answered without `app`, once the node is loaded.
    pub(super) hot: Arc<OnceLock<veto_api::HotRoutes>>,
    pub(super) limits: HttpLimits,
    pub(super) rates: RateLimiter,
    pub(super) http1: http1::Builder,
    pub(super) http2: http2::Builder<TokioExecutor>,
    /// Whether writes need a verified client certificate.
    pub(super) client_certificates: bool,
}

/// The protocol of a connection: HTTP/1.1, or h2 when TLS's ALPN chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Serves one plain-HTTP connection until it ends, a timeout closes it, or
/// `stop` turns true (then it finishes the request in hand and closes).
pub(super) async fn serve_plain(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = Tracked::new(Lingering::new(stream), &activity, true, true);
    drive(shared, Protocol::Http1, io, activity, remote, None, stop).await;
}

/// Serves one HTTPS connection: the handshake within the header timeout,
/// then HTTP/1.1 or h2 as its ALPN says, as [`serve_plain`] does.
pub(super) async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    remote: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = Tracked::new(Lingering::new(stream), &activity, false, true);
    let handshake = tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(io));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                // Plain HTTP on the HTTPS port, an untrusted client
                // certificate, or a client that gave up.
                metrics::counter!("veto_http_tls_handshake_failures_total").increment(1);
                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics::counter!("veto_http_timeouts_total", "kind" => "handshake").increment(1);
                tracing::debug!(%remote, "closing the connection: TLS handshake timed out");
                return;
            }
        },
        () = super::stopped(&mut stop) => return,
    };
    let accepted = stream.get_ref().1;
    let protocol = match accepted.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    };
    // rustls verified it against the client CA, or the handshake failed.
    let client = TlsClient {
        certificate: accepted
            .peer_certificates()
            .and_then(<[_]>::first)
            .map(|cert| Arc::new(cert.clone().into_owned())),
    };
    activity.restart();
    let io = Tracked::new(stream, &activity, protocol == Protocol::Http1, false);
    drive(shared, protocol, io, activity, remote, Some(client), stop).await;
}

/// Serves `io` with `protocol` under the timeouts.
async fn drive<I>(
    shared: Arc<Shared>,
    protocol: Protocol,
    io: I,
    activity: Arc<Activity>,
    remote: SocketAddr,
    client: Option<TlsClient>,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let service = {
        let activity = Arc::clone(&activity);
        let shared = Arc::clone(&shared);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (shared, activity) = (Arc::clone(&shared), Arc::clone(&activity));
            let client = client.clone();
            async move {
                let response =
                    handle(&shared, &activity, protocol, remote, client.as_ref(), req).await;
                Ok::<_, Infallible>(response)
            }
        })
    };
    match protocol {
        Protocol::Http1 => {
            let conn = shared.http1.serve_connection(io, service);
            timed(
                conn,
                |c| c.graceful_shutdown(),
                &activity,
                &shared.limits,
                remote,
                stop,
            )
            .await;
        }
        Protocol::Http2 => {
            let conn = shared.http2.serve_connection(io, service);
            timed(
                conn,
                |c| c.graceful_shutdown(),
                &activity,
                &shared.limits,
                remote,
                stop,
            )
            .await;
        }
    }
}

/// Drives `conn` until it ends, a timeout closes it, or `stop` turns true
/// (then `shutdown` lets it finish the requests in hand and close).
async fn timed<C>(
    conn: C,
    shutdown: fn(Pin<&mut C>),
    activity: &Activity,
    limits: &HttpLimits,
    remote: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    C: std::future::Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(conn);
    let mut stopping = false;
    let horizon = activity::horizon(limits);
    loop {
        let now = activity.now();
        let at = match activity.deadline(limits) {
            Some((at, why)) if at <= now => {
                metrics::counter!("veto_http_timeouts_total", "kind" => why.name()).increment(1);
                tracing::debug!(%remote, timeout = why.name(), "closing the connection");
                return;
            }
            Some((at, _)) => at.min(now + horizon),
            None => now + horizon,
        };
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%remote, error = %e, "HTTP connection ended");
                }
                return;
            }
            () = tokio::time::sleep(Duration::from_millis(at - now)) => {}
            () = super::stopped(&mut stop), if !stopping => {
                stopping = true;
                shutdown(conn.as_mut());
            }
        }
    }
}

/// Answers one request: the client-certificate check, the rate limits,
/// then the router.
async fn handle(
    shared: &Shared,
    activity: &Arc<Activity>,
    protocol: Protocol,
    remote: SocketAddr,
    client: Option<&TlsClient>,
    req: Request<Incoming>,
) -> Response<Body> {
    let in_flight = activity.request_started();
    let refused = shared
        .client_certificates
        .then(|| client_cert::refusal(req.method(), req.uri().path(), client))
        .flatten();
    let response = if let Some(refused) = refused {
        refused
    } else if let Err(limited) =
        shared
            .rates
            .check(req.method(), req.uri().path(), req.headers(), remote.ip())
    {
        limited.response()
    } else if let Some(answer) = shared
        .hot
        .get()
        .and_then(|hot| hot.answer(req.method(), req.uri(), req.headers()))
    {
        answer
    } else {
        route(shared, remote, client, req).await
    };
    response.map(|body| Body::new(Answer::new(body, in_flight, protocol == Protocol::Http2)))
}

/// The router's answer, with the body under its timeout.
async fn route(
    shared: &Shared,
    remote: SocketAddr,
    client: Option<&TlsClient>,
    req: Request<Incoming>,
) -> Response<Body> {
    let timed_out = Arc::new(AtomicBool::new(false));
    let timeout = shared.limits.body_timeout;
    let flag = Arc::clone(&timed_out);
    let mut req = req.map(|body| {
        if body.is_end_stream() {
            Body::new(body)
        } else {
            Body::new(TimeoutBody::new(body, timeout, flag))
        }
    });
    req.extensions_mut().insert(ConnectInfo(remote));
    if let Some(client) = client {
        req.extensions_mut().insert(client.clone());
    }
    let response = match shared.app.clone().oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Relaxed) {
        metrics::counter!("veto_http_timeouts_total", "kind" => "body").increment(1);
        request_timeout(timeout)
    } else {
        response
    }
}

/// 408 for a body that did not arrive in time; the connection is closed after.
fn request_timeout(limit: Duration) -> Response<Body> {
    let body = serde_json::json!({
        "error": "request_timeout",
        "message": format!("the request body did not arrive within {} s", limit.as_secs()),
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// A request body that fails once its deadline passes, and says so.
struct TimeoutBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

/// The error of a body that did not arrive in time.
#[derive(Debug)]
struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

impl TimeoutBody {
    fn new(inner: Incoming, limit: Duration, timed_out: Arc<AtomicBool>) -> TimeoutBody {
        TimeoutBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            timed_out,
        }
    }
}

impl hyper::body::Body for TimeoutBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(axum::BoxError::from)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
