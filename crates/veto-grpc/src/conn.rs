//! Accepting gRPC connections within bounds: at most a fixed number open at
//! once (one beyond them is closed straight away, and Envoy fails closed on
//! it), and each must send its first byte within [`crate::FIRST_BYTE_TIMEOUT`].
//!
//! Counted in `veto_grpc_connections` (open now) and
//! `veto_grpc_connections_refused_total`.

use std::convert::Infallible;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use metrics::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// One accepted connection, holding its place under the cap.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Until the first byte arrives: when the connection is closed unheard.
    first_byte: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Conn {
    fn new(
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        open: Gauge,
        silence: Duration,
    ) -> Conn {
        open.increment(1.0);
        Conn {
            stream,
            first_byte: Some(Box::pin(tokio::time::sleep(silence))),
            _permit: permit,
            open,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some(deadline) = this.first_byte.as_mut() {
            if buf.filled().len() > before {
                this.first_byte = None;
            } else if polled.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing in time",
                )));
            }
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connections accepted on `listener`, at most `cap` open at once, each
/// closed if it sends nothing for `silence` after it is accepted. Accept
/// errors are skipped (running out of descriptors pauses accepting for a
/// moment), so the stream never ends and never fails.
pub(crate) fn incoming(
    listener: TcpListener,
    cap: usize,
    silence: Duration,
) -> Pin<Box<impl Stream<Item = Result<Conn, Infallible>>>> {
    let slots = Arc::new(Semaphore::new(cap));
    let open = metrics::gauge!("veto_grpc_connections");
    let refused = metrics::counter!("veto_grpc_connections_refused_total");
    Box::pin(futures::stream::unfold(listener, move |listener| {
        let (slots, open, refused) = (Arc::clone(&slots), open.clone(), refused.clone());
        async move {
            loop {
                let (stream, remote) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_failed(&e).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    refused.increment(1);
                    tracing::debug!(%remote, "gRPC connection refused: at the connection limit");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                return Some((Ok(Conn::new(stream, permit, open, silence)), listener));
            }
        }
    }))
}

/// A failed accept: per-connection errors are skipped; running out of
/// descriptors (or memory) pauses accepting for a moment rather than spin.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting gRPC connections failed; pausing");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Reads until the connection ends; true if it ended in time.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(limit, stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn a_connection_beyond_the_cap_is_closed_and_a_silent_one_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silence = Duration::from_millis(200);
        let mut conns = incoming(listener, 1, silence);

        // The first takes the only slot; it talks, so it outlives the silence.
        let mut talker = TcpStream::connect(addr).await.unwrap();
        talker.write_all(b"hello").await.unwrap();
        let Some(Ok(mut first)) = conns.next().await else {
            panic!("no connection");
        };
        let mut buf = [0u8; 5];
        first.read_exact(&mut buf).await.unwrap();

        // A second one while the first is open is closed at once.
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let accepting = tokio::spawn(async move {
            let next = conns.next().await;
            (next, conns)
        });
        assert!(closed_within(&mut refused, Duration::from_secs(5)).await);
        tokio::time::sleep(silence * 2).await;
        first.write_all(b"still here").await.unwrap();
        let mut reply = [0u8; 10];
        talker.read_exact(&mut reply).await.unwrap();

        // Once it is gone, its slot is free; a silent newcomer is closed
        // after the silence.
        drop(first);
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let (next, _conns) = accepting.await.unwrap();
        let Some(Ok(mut conn)) = next else {
            panic!("no connection");
        };
        let started = Instant::now();
        let mut sink = [0u8; 1];
        let err = conn.read(&mut sink).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(conn);
        assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    }
}
