//! What one connection is doing, for its timeouts: when it went idle, when
//! a request's headers began, and whether its client takes what is sent,
//! told by its socket ([`Tracked`]), its requests ([`InFlight`]) and the
//! bodies of its answers ([`Answer`]).
//!
//! On HTTP/1 a client that reads nothing blocks the socket's writes. On h2
//! one stream can stall alone, under flow control, while the socket stays
//! writable (pings, other streams): hyper then does not ask that stream's
//! body for its next frame until the client opens its window. So an h2
//! answer that handed hyper a frame and is not asked for the next one within
//! the write timeout closes the connection too, as a blocked socket does.
//!
//! Nothing here wakes the connection's driver: a deadline that starts now
//! ends at least the shortest timeout from now, so a driver that looks again
//! at least that often ([`horizon`]) closes every connection on time, and a
//! busy connection costs no wake-up and no new timer per request.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::HttpLimits;

/// Milliseconds since the connection opened; `NEVER` for "not now".
const NEVER: u64 = u64::MAX;

/// Which timeout closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    Header,
    Idle,
    Write,
}

impl Expiry {
    pub(super) fn name(self) -> &'static str {
        match self {
            Expiry::Header => "header",
            Expiry::Idle => "idle",
            Expiry::Write => "write",
        }
    }
}

/// What one connection is doing, kept by its socket, its requests and its
/// driver (atomics and a lock: on h2 each answer runs in a task of its own).
pub(super) struct Activity {
    opened: Instant,
    /// Requests whose answer has not been sent in full.
    in_flight: AtomicUsize,
    /// When the connection last became idle: opened, or an answer finished.
    idle_since: AtomicU64,
    /// When the first byte of the next request's headers arrived.
    head_since: AtomicU64,
    /// When a write first found the client not reading.
    blocked_since: AtomicU64,
    /// h2 answers that handed hyper a frame and wait to be asked for the
    /// next one: by answer, since when.
    waiting: Mutex<HashMap<u64, u64>>,
    /// The id of the next h2 answer.
    answers: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NEVER),
            blocked_since: AtomicU64::new(NEVER),
            waiting: Mutex::new(HashMap::new()),
            answers: AtomicU64::new(0),
        }
    }

    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    pub(super) fn read(&self, n: usize) {
        if n > 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NEVER
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    pub(super) fn write_blocked(&self) {
        if self.blocked_since.load(Ordering::Relaxed) == NEVER {
            self.blocked_since.store(self.now(), Ordering::Relaxed);
        }
    }

    pub(super) fn wrote(&self) {
        if self.blocked_since.load(Ordering::Relaxed) != NEVER {
            self.blocked_since.store(NEVER, Ordering::Relaxed);
        }
    }

    /// Starts the clocks again after a TLS handshake: the connection is idle
    /// from here, its first request not begun.
    pub(super) fn restart(&self) {
        self.idle_since.store(self.now(), Ordering::Relaxed);
        self.head_since.store(NEVER, Ordering::Relaxed);
        self.blocked_since.store(NEVER, Ordering::Relaxed);
    }

    pub(super) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NEVER, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// An h2 answer handed hyper a frame: from now it waits to be asked for
    /// the next.
    fn answer_waits(&self, answer: u64) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(answer, self.now());
    }

    /// An h2 answer was asked for its next frame, or is done.
    fn answer_asked(&self, answer: u64) {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&answer);
    }

    /// The earliest deadline in force, and which it is.
    pub(super) fn deadline(&self, limits: &HttpLimits) -> Option<(u64, Expiry)> {
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
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = waiting.values().min() {
            consider(after(*since, limits.write_timeout), Expiry::Write);
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

/// The longest a driver may wait before it looks at the deadlines again:
/// the shortest timeout, since any deadline that starts later ends later.
pub(super) fn horizon(limits: &HttpLimits) -> u64 {
    let shortest = limits
        .header_timeout
        .min(limits.idle_timeout)
        .min(limits.write_timeout);
    u64::try_from(shortest.as_millis()).unwrap_or(NEVER).max(1)
}

/// A request being answered; the connection is idle again once every one is
/// dropped (its answer's body sent in full, or abandoned).
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(self.0.now(), Ordering::Relaxed);
        }
    }
}

/// A stream telling the connection's [`Activity`] what it reads and whether
/// its client takes what is written (each, as asked: over TLS the reads are
/// told from above the TLS layer and the writes from below it).
pub(super) struct Tracked<I> {
    io: I,
    activity: Arc<Activity>,
    reads: bool,
    writes: bool,
}

impl<I> Tracked<I> {
    pub(super) fn new(io: I, activity: &Arc<Activity>, reads: bool, writes: bool) -> Tracked<I> {
        Tracked {
            io,
            activity: Arc::clone(activity),
            reads,
            writes,
        }
    }

    fn track<T>(&self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if !self.writes {
            return polled;
        }
        match &polled {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(_) => self.activity.wrote(),
        }
        polled
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let (true, Poll::Ready(Ok(()))) = (this.reads, &polled) {
            this.activity.read(buf.filled().len() - before);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
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

/// An answer's body, holding its request in flight until it is sent, and
/// on h2 telling its [`Activity`] whether it waits on the client.
pub(super) struct Answer {
    body: Body,
    _in_flight: InFlight,
    /// On h2: the connection and this answer's id there, and whether it
    /// handed hyper a frame and waits to be asked for the next.
    stall: Option<(Arc<Activity>, u64, bool)>,
}

impl Answer {
    /// The answer of the request `in_flight` with this body; `h2` tracks
    /// the stalls of its stream.
    pub(super) fn new(body: Body, in_flight: InFlight, h2: bool) -> Answer {
        let stall = h2.then(|| {
            let activity = Arc::clone(&in_flight.0);
            let id = activity.answers.fetch_add(1, Ordering::Relaxed);
            (activity, id, false)
        });
        Answer {
            body,
            _in_flight: in_flight,
            stall,
        }
    }
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some((activity, id, waiting)) = &mut this.stall {
            if *waiting {
                activity.answer_asked(*id);
                *waiting = false;
            }
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let (Some((activity, id, waiting)), Poll::Ready(Some(Ok(_)))) =
            (&mut this.stall, &polled)
        {
            activity.answer_waits(*id);
            *waiting = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some((activity, id, true)) = &self.stall {
            activity.answer_asked(*id);
        }
    }
}
