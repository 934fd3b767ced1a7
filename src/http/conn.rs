//! One HTTP connection: hyper's HTTP/1 state machine, driven under the
//! header, body, idle and write timeouts, with every request passed through
//! the rate limits to the router.

use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use bytes::Bytes;
use hyper::body::Body as _;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tower::ServiceExt as _;

use super::rate::RateLimiter;
use super::HttpLimits;

/// What every connection shares.
pub(super) struct Shared {
    pub(super) app: Router,
    pub(super) limits: HttpLimits,
    pub(super) rates: RateLimiter,
}

/// Milliseconds since the connection opened; `NEVER` for "not now".
const NEVER: u64 = u64::MAX;

/// Which timeout closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
    Write,
}

impl Expiry {
    fn name(self) -> &'static str {
        match self {
            Expiry::Header => "header",
            Expiry::Idle => "idle",
            Expiry::Write => "write",
        }
    }
}

/// What one connection is doing, kept by its socket, its requests and its
/// driver (all in one task; atomics only because tasks must be `Send`).
struct Activity {
    opened: Instant,
    /// Requests whose answer has not been sent in full.
    in_flight: AtomicUsize,
    /// When the connection last became idle: opened, or an answer finished.
    idle_since: AtomicU64,
    /// When the first byte of the next request's headers arrived.
    head_since: AtomicU64,
    /// When a write first found the client not reading.
    blocked_since: AtomicU64,
    /// Wakes the driver when a deadline may have come closer.
    wake: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NEVER),
            blocked_since: AtomicU64::new(NEVER),
            wake: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn read(&self, n: usize) {
        if n > 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NEVER
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    fn write_blocked(&self) {
        if self.blocked_since.load(Ordering::Relaxed) == NEVER {
            self.blocked_since.store(self.now(), Ordering::Relaxed);
            self.wake.notify_one();
        }
    }

    fn wrote(&self) {
        if self.blocked_since.load(Ordering::Relaxed) != NEVER {
            self.blocked_since.store(NEVER, Ordering::Relaxed);
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NEVER, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// The earliest deadline in force, and which it is.
    fn deadline(&self, limits: &HttpLimits) -> Option<(u64, Expiry)> {
        let after = |since: u64, d: Duration| {
            since.saturating_add(u64::try_from(d.as_millis()).unwrap_or(NEVER))
        };
        let mut soonest: Option<(u64, Expiry)> = None;
        let mut consider = |at: u64, why: Expiry| {
            if soonest.is_none_or(|(s, _)| at < s) {
                soonest = Some((at, why));
            }
        };
        let blocked = self.blocked_since.load(Ordering::Relaxed);
        if blocked != NEVER {
            consider(after(blocked, limits.write_timeout), Expiry::Write);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            match self.head_since.load(Ordering::Relaxed) {
                NEVER => consider(
                    after(self.idle_since.load(Ordering::Relaxed), limits.idle_timeout),
                    Expiry::Idle,
                ),
                head => consider(after(head, limits.header_timeout), Expiry::Header),
            }
        }
        soonest
    }
}

/// A request being answered; the connection is idle again once every one is
/// dropped (its answer's body sent in full, or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(self.0.now(), Ordering::Relaxed);
        }
    }
}

/// Serves one connection until it ends, a timeout closes it, or `stop`
/// turns true (then it finishes the request in hand and closes).
pub(super) async fn drive(
    shared: Arc<Shared>,
    builder: &http1::Builder,
    stream: TcpStream,
    remote: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        io: stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let activity = Arc::clone(&activity);
        let shared = Arc::clone(&shared);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (shared, activity) = (Arc::clone(&shared), Arc::clone(&activity));
            async move { Ok::<_, Infallible>(handle(&shared, &activity, remote, req).await) }
        })
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    let limits = shared.limits;
    loop {
        let now = activity.now();
        let at = match activity.deadline(&limits) {
            Some((at, why)) if at <= now => {
                metrics::counter!("veto_http_timeouts_total", "kind" => why.name()).increment(1);
                tracing::debug!(%remote, timeout = why.name(), "closing the connection");
                return;
            }
            Some((at, _)) => at,
            // Nothing to time while requests are answered; look again later.
            None => now + 1_000,
        };
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%remote, error = %e, "HTTP connection ended");
                }
                return;
            }
            () = tokio::time::sleep(Duration::from_millis(at - now)) => {}
            () = activity.wake.notified() => {}
            () = super::stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers one request: the rate limits, then the router, with the body
/// under its timeout.
async fn handle(
    shared: &Shared,
    activity: &Arc<Activity>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let in_flight = activity.request_started();
    let limited = shared
        .rates
        .check(req.method(), req.uri().path(), req.headers(), remote.ip());
    let response = match limited {
        Err(limited) => limited.response(),
        Ok(()) => {
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
    };
    response.map(|body| {
        Body::new(Answer {
            body,
            _in_flight: in_flight,
        })
    })
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

/// The socket, telling the connection's [`Activity`] what it reads and
/// whether its client takes what is written.
struct Tracked {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.activity.read(buf.filled().len() - before);
        }
        polled
    }
}

impl Tracked {
    fn track<T>(&self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match &polled {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(_) => self.activity.wrote(),
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.track(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.track(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
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

/// An answer's body, holding its request in flight until it is sent.
struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
