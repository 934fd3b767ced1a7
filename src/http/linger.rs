//! Lingering close: a connection the server closes after an answer keeps
//! reading, and discarding, what the client still sends for a little while.
//!
//! A server that answers before it has read the whole request (a 413 for a
//! body over the limit, refused on its declared length) and then closes the
//! socket with unread bytes in it makes the kernel reset the connection. The
//! client, still writing its body, then sees a broken pipe instead of the
//! answer it was sent. Draining until the client closes its side lets it read
//! the answer first. nginx does the same (`lingering_close`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The longest a closed connection is drained.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most bytes a closed connection is drained of.
const LINGER_BYTES: usize = 4 << 20;

/// A TCP stream that lingers (see the module's documentation) once the server
/// has shut down its writing side; a stream dropped without that (a timeout
/// closing it, say) is closed at once.
pub(super) struct Lingering {
    stream: Option<TcpStream>,
    shut: bool,
}

impl Lingering {
    pub(super) fn new(stream: TcpStream) -> Lingering {
        Lingering {
            stream: Some(stream),
            shut: false,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        match self.stream.as_mut() {
            Some(stream) => Pin::new(stream),
            // Taken only in `drop`.
            None => unreachable!("a lingering stream is used after it is dropped"),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(mut stream), true) = (self.stream.take(), self.shut) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async {
                let mut buf = [0u8; 16 * 1024];
                let mut drained = 0;
                while drained < LINGER_BYTES {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => drained += n,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, drain).await;
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.get_mut().stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = this.stream().poll_shutdown(cx);
        if polled.is_ready() {
            this.shut = true;
        }
        polled
    }
}
