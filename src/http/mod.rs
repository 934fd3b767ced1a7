//! The HTTP server of `veto serve`: its own accept loop on hyper, so that a
//! node bounds what its clients can hold of it.
//!
//! - **Timeouts.** A request's headers must arrive within `--header-timeout`
//!   of their first byte, and its body within `--body-timeout` of the headers
//!   (408 `request_timeout` otherwise). A connection idle between requests is
//!   closed after `--idle-timeout`, and one whose client reads nothing of an
//!   answer (a watch stream too) for `--write-timeout` is closed as well.
//! - **Connections.** The soft file-descriptor limit is raised to the hard one
//!   at start, and at most `--max-connections` connections are open at once
//!   (by default the limit less [`FD_RESERVE`], at most 50,000). A connection
//!   beyond them is answered a short `503` and closed; those already open keep
//!   being served.
//! - **Rate limits.** Token buckets per bearer token on writes and per client
//!   address on lookups (see [`rate`]).
//! - **HTTPS.** With `--api-tls-cert` and `--api-tls-key` every connection is
//!   TLS (see [`tls`]), under the same cap and timeouts, the handshake within
//!   the header timeout. A TLS connection beyond the cap is closed without
//!   an answer: answering would take the handshake, the very work the cap
//!   sheds. With `--api-tls-client-ca`, writes need a verified client
//!   certificate (see [`client_cert`]).

mod activity;
pub(crate) mod client_cert;
mod conn;
mod linger;
pub(crate) mod rate;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Default `--header-timeout`.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--body-timeout`.
pub(crate) const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--idle-timeout`.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `--write-timeout`.
pub(crate) const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most connections the default cap allows, whatever the descriptor limit.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 50_000;
/// File descriptors kept out of the connection cap: the store, QUIC, log
/// files, snapshots and the connections being refused.
pub(crate) const FD_RESERVE: u64 = 512;
/// Connections being refused at once; each holds its descriptor for at most
/// [`REFUSAL_LINGER`].
const REFUSING: usize = 64;
/// How long a refused connection is kept open so that its client reads the 503.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The answer to a connection beyond the cap.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 96\r\nretry-after: 1\r\nconnection: close\r\n\r\n{\"error\":\"unavailable\",\"message\":\"this node serves its limit of connections; retry in a moment\"}";

/// The resource bounds of the HTTP server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HttpLimits {
    /// Time for a request's headers, from their first byte.
    pub(crate) header_timeout: Duration,
    /// Time for a request's body, from its headers.
    pub(crate) body_timeout: Duration,
    /// Time a connection may sit idle between requests.
    pub(crate) idle_timeout: Duration,
    /// Time an answer may wait on a client that reads nothing.
    pub(crate) write_timeout: Duration,
    /// Connections open at once; `None` derives it from the descriptor limit.
    pub(crate) max_connections: Option<usize>,
    /// Rate limits of writes and lookups.
    pub(crate) rates: rate::RateLimits,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: None,
            rates: rate::RateLimits::default(),
        }
    }
}

/// Raises the soft limit of open files to the hard limit; answers the soft
/// limit in force afterwards.
pub(crate) fn raise_fd_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), soft = limit.rlim_cur, "cannot raise the open-files limit");
        }
    }
    Ok(limit.rlim_cur)
}

/// The connection cap: `requested`, or by default the descriptor limit less
/// [`FD_RESERVE`] (at least half the limit) and at most
/// [`DEFAULT_MAX_CONNECTIONS`]. A request above what the limit leaves room
/// for is lowered to it, with a warning.
pub(crate) fn connection_cap(requested: Option<usize>, fd_limit: u64) -> usize {
    let room = fd_limit.saturating_sub(FD_RESERVE).max(fd_limit / 2).max(1);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    match requested {
        None => room.min(DEFAULT_MAX_CONNECTIONS),
        Some(n) if n > room => {
            tracing::warn!(
                requested = n,
                allowed = room,
                fd_limit,
                "--max-connections is more than the open-files limit leaves room for; lowered (raise the limit, e.g. LimitNOFILE)"
            );
            room
        }
        Some(n) => n,
    }
}

/// Serves `app` on `listener` within `limits` until `stop` turns true, over
/// TLS when `tls` is given; once `hot` is set, its routes are answered
/// without `app`.
pub(crate) async fn serve(
    listener: TcpListener,
    (app, hot): (Router, Arc<OnceLock<veto_api::HotRoutes>>),
    (limits, max_connections): (HttpLimits, usize),
    tls: Option<Arc<tls::ApiTls>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let connections = Arc::new(Semaphore::new(max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let mut http1 = http1::Builder::new();
    // The header timeout is the connection driver's, which tells it apart
    // from the idle time between requests; hyper's own would not.
    http1.header_read_timeout(None).keep_alive(true);
    match (&tls, listener.local_addr()) {
        (Some(tls), _) => {
            tls.reload_on_hangup()?;
            tracing::info!(
                client_certificates = tls.client_certificates(),
                "the HTTP API is served over TLS (HTTP/1.1 and h2)"
            );
        }
        (None, Ok(addr)) => tls::warn_if_plaintext(addr),
        (None, Err(_)) => {}
    }
    let shared = Arc::new(conn::Shared {
        app,
        hot,
        limits,
        rates: rate::RateLimiter::new(limits.rates),
        http1,
        http2: http2::Builder::new(TokioExecutor::new()),
        client_certificates: tls.as_ref().is_some_and(|t| t.client_certificates()),
    });
    let open = metrics::gauge!("veto_http_connections");
    let refused = metrics::counter!("veto_http_connections_refused_total");
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => return Ok(()),
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            refused.increment(1);
            match tls {
                Some(_) => drop(stream),
                None => refuse(stream, remote, &refusing),
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        open.increment(1.0);
        let (shared, stop, open) = (Arc::clone(&shared), stop.clone(), open.clone());
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => conn::serve_tls(shared, acceptor, stream, remote, stop).await,
                None => conn::serve_plain(shared, stream, remote, stop).await,
            }
            open.decrement(1.0);
            drop(permit);
        });
    }
}

/// Resolves once `stop` is true (or its sender is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// A failed accept: per-connection errors are skipped; running out of
/// descriptors (or memory) pauses accepting for a moment rather than spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting HTTP connections failed; pausing");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Answers a connection beyond the cap with a 503 and closes it. The answer
/// is written at once; the connection then stays open for a moment, reading
/// and discarding what its client sent, so that closing it does not reset it
/// before the client reads the answer. Beyond [`REFUSING`] such connections,
/// it is closed straight after the write.
fn refuse(stream: TcpStream, remote: SocketAddr, refusing: &Arc<Semaphore>) {
    tracing::debug!(%remote, "connection refused: at the connection limit");
    let Ok(permit) = Arc::clone(refusing).try_acquire_owned() else {
        // Written straight to the socket: a stream just accepted has no
        // readiness known yet, so the runtime's own write would not try.
        if let Ok(mut socket) = stream.into_std() {
            use std::io::Write as _;
            let _ = socket.write(REFUSAL);
        }
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "unavailable");
    }

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        assert_eq!(connection_cap(None, 1_048_576), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connection_cap(None, 20_000), 20_000 - 512);
        assert_eq!(connection_cap(None, 1_024), 512);
        assert_eq!(connection_cap(None, 256), 128);
        assert_eq!(connection_cap(Some(200), 20_000), 200);
        assert_eq!(connection_cap(Some(30_000), 20_000), 20_000 - 512);
    }
}
