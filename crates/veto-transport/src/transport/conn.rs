//! One connection's life: lane setup, admission, reading and writing frames,
//! and the `Disconnected` event at the end.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::{RecvStream, SendStream, WriteError};
use rustls::pki_types::CertificateDer;
use tokio::sync::OwnedSemaphorePermit;

use super::frame::{code, describe, lane_tag, read_frame, read_tag, write_frames, ReadFail};
use super::inner::Inner;
use super::registry::{Admit, ConnShared};
use super::{Lane, PeerIdentity, TransportEvent};
use crate::tls::{cert_sha256, peer_name_from_cert};

/// Which configured peer a dialled connection belongs to.
pub(crate) struct DialContext {
    pub(crate) addr: SocketAddr,
    pub(crate) generation: u64,
}

/// Why a connection was not admitted.
pub(crate) enum EstablishError {
    /// It reached a node with our own name.
    SelfConnect,
    /// Another connection to this peer is kept instead.
    Duplicate,
    /// The node's admission refused the peer, for this reason.
    Refused(String),
    /// Anything else, with a reason for logs.
    Failed(String),
}

/// The two streams in each direction, indexed by lane.
pub(crate) struct Lanes {
    send: [SendStream; 2],
    recv: [RecvStream; 2],
}

/// An admitted connection, announced with `Connected`, ready to [`serve`].
pub(crate) struct Established {
    pub(crate) shared: Arc<ConnShared>,
    lanes: Lanes,
}

/// Handles one incoming connection from handshake to close.
pub(crate) async fn accept(
    inner: Arc<Inner>,
    incoming: quinn::Incoming,
    permit: OwnedSemaphorePermit,
) {
    let remote = incoming.remote_address();
    let handshake = async {
        let connecting = incoming.accept().map_err(|e| describe(&e))?;
        match tokio::time::timeout(inner.config.handshake_timeout, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => {
                if refused_missing_certificate(&e) {
                    inner.config.tls.count_missing_certificate();
                }
                Err(describe(&e))
            }
            Err(_) => Err("handshake timed out".to_owned()),
        }
    };
    let conn = match handshake.await {
        Ok(conn) => conn,
        Err(reason) => {
            inner.totals.handshake_failure();
            tracing::debug!(%remote, %reason, "incoming handshake failed");
            return;
        }
    };
    let established = establish(&inner, conn, None).await;
    drop(permit);
    match established {
        Ok(established) => {
            serve(&inner, established).await;
        }
        Err(EstablishError::Failed(reason)) => {
            tracing::debug!(%remote, %reason, "incoming connection not admitted");
        }
        Err(EstablishError::Refused(reason)) => {
            tracing::debug!(%remote, %reason, "incoming connection refused");
        }
        Err(EstablishError::SelfConnect | EstablishError::Duplicate) => {}
    }
}

/// True when our TLS stack ended the handshake because the client sent no
/// certificate (TLS alert 116, certificate_required).
fn refused_missing_certificate(e: &quinn::ConnectionError) -> bool {
    const CERTIFICATE_REQUIRED: u8 = 116;
    matches!(e, quinn::ConnectionError::TransportError(t)
        if t.code == quinn::TransportErrorCode::crypto(CERTIFICATE_REQUIRED))
}

fn peer_identity(conn: &quinn::Connection) -> Option<PeerIdentity> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let leaf = certs.first()?;
    Some(PeerIdentity {
        name: peer_name_from_cert(leaf).ok()?,
        cert_sha256: cert_sha256(leaf),
    })
}

/// Sets up the lanes, applies the one-connection-per-pair rule and announces
/// the connection.
pub(crate) async fn establish(
    inner: &Arc<Inner>,
    conn: quinn::Connection,
    dial: Option<&DialContext>,
) -> Result<Established, EstablishError> {
    let Some(peer) = peer_identity(&conn) else {
        conn.close(code::PROTOCOL, b"certificate carries no node name");
        return Err(EstablishError::Failed(
            "peer certificate carries no node name".into(),
        ));
    };
    let name = peer.name.clone();
    if let Some(dial) = dial {
        inner
            .registry()
            .set_peer(dial.addr, dial.generation, None, Some(&name));
    }
    if name == inner.local_name {
        conn.close(code::SELF_CONNECT, b"same node name");
        return Err(EstablishError::SelfConnect);
    }
    // Before any lane opens: a refused peer never gets to send a frame.
    if let Err(reason) = inner.config.admission.decide(&peer, dial.map(|d| d.addr)) {
        inner.totals.refused();
        tracing::debug!(peer = %name, remote = %conn.remote_address(), dialed = dial.is_some(), %reason, "peer refused");
        conn.close(code::REFUSED, reason.as_bytes());
        return Err(EstablishError::Refused(reason));
    }

    let lanes = match tokio::time::timeout(inner.config.handshake_timeout, open_lanes(&conn)).await
    {
        Ok(Ok(lanes)) => lanes,
        Ok(Err(ReadFail::Protocol { kind, reason })) => {
            inner.totals.frame_error(kind);
            tracing::warn!(peer = %name, %reason, "closing connection: protocol violation during lane setup");
            conn.close(code::PROTOCOL, reason.as_bytes());
            return Err(EstablishError::Failed(reason));
        }
        Ok(Err(ReadFail::Lost)) => {
            let reason = conn
                .close_reason()
                .map(|e| describe(&e))
                .unwrap_or_else(|| "connection lost during lane setup".into());
            return Err(EstablishError::Failed(reason));
        }
        Err(_) => {
            conn.close(code::NORMAL, b"lane setup timed out");
            return Err(EstablishError::Failed("lane setup timed out".into()));
        }
    };

    let queue_bytes = [
        inner.config.urgent_queue_bytes,
        inner.config.bulk_queue_bytes,
    ];
    let (shared, admit) = {
        let mut reg = inner.registry();
        let current = match dial {
            Some(d) => reg.peers.get(&d.addr).map(|p| p.generation) == Some(d.generation),
            None => true,
        };
        if !current || inner.is_shutting_down() {
            drop(reg);
            conn.close(code::REMOVED, b"peer removed");
            return Err(EstablishError::Failed("peer removed".into()));
        }
        let id = reg.alloc_id();
        let shared = Arc::new(ConnShared::new(id, peer, dial.is_some(), conn, queue_bytes));
        let admit = reg.admit(&shared, &inner.local_name);
        inner.publish_states(&reg);
        (shared, admit)
    };

    match admit {
        Admit::Duplicate => {
            inner.totals.duplicate();
            tracing::debug!(peer = %shared.peer_name, "closing duplicate connection");
            shared.conn.close(code::DUPLICATE, b"duplicate");
            return Err(EstablishError::Duplicate);
        }
        Admit::Accepted {
            replaced: Some(old),
        } => {
            inner.totals.duplicate();
            tracing::debug!(peer = %shared.peer_name, old = %old.id, new = %shared.id, "replacing duplicate connection");
            old.close(code::DUPLICATE, "duplicate");
            // Announce the new connection only after the old one's
            // `Disconnected`, so at most one connection per peer is ever up.
            let mut gone = old.gone();
            tokio::select! {
                _ = gone.wait_for(|g| *g) => {}
                e = shared.conn.closed() => {
                    let mut reg = inner.registry();
                    reg.remove(&shared);
                    inner.publish_states(&reg);
                    drop(reg);
                    shared.mark_gone();
                    return Err(EstablishError::Failed(describe(&e)));
                }
            }
        }
        Admit::Accepted { replaced: None } => {}
    }

    inner.totals.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(
        peer = %shared.peer_name,
        conn = %shared.id,
        remote = %shared.remote,
        dialed = shared.dialed,
        "peer connected"
    );
    inner
        .emit(TransportEvent::Connected {
            conn: shared.id,
            peer_name: shared.peer_name.clone(),
            cert_sha256: shared.cert_sha256,
            remote: shared.remote,
            dialed: shared.dialed,
        })
        .await;
    Ok(Established { shared, lanes })
}

/// Opens our two lanes and waits for the peer's. The peer only gets this far
/// after accepting our certificate, so this also confirms the handshake from
/// the dialling side, where the QUIC handshake completes a round trip before
/// the server has checked the client's certificate.
async fn open_lanes(conn: &quinn::Connection) -> Result<Lanes, ReadFail> {
    let open = |lane: Lane| async move {
        let mut send = conn.open_uni().await.map_err(|_| ReadFail::Lost)?;
        // Urgent frames go out first when both lanes have data.
        let _ = send.set_priority(if lane == Lane::Urgent { 1 } else { 0 });
        send.write_all(&[lane_tag(lane)])
            .await
            .map_err(|_| ReadFail::Lost)?;
        Ok::<_, ReadFail>(send)
    };
    let send = [open(Lane::Urgent).await?, open(Lane::Bulk).await?];

    let mut recv: [Option<RecvStream>; 2] = [None, None];
    while recv.iter().any(Option::is_none) {
        let mut stream = conn.accept_uni().await.map_err(|_| ReadFail::Lost)?;
        let lane = read_tag(&mut stream).await?;
        let slot = &mut recv[lane.index()];
        if slot.is_some() {
            return Err(ReadFail::protocol(
                "protocol",
                format!("second {} lane stream", lane.as_str()),
            ));
        }
        *slot = Some(stream);
    }
    match recv {
        [Some(urgent), Some(bulk)] => Ok(Lanes {
            send,
            recv: [urgent, bulk],
        }),
        _ => Err(ReadFail::Lost),
    }
}

/// How the serving loop ended.
enum End {
    Lost,
    Protocol { kind: &'static str, reason: String },
    EventsClosed,
}

impl From<ReadFail> for End {
    fn from(fail: ReadFail) -> Self {
        match fail {
            ReadFail::Lost => End::Lost,
            ReadFail::Protocol { kind, reason } => End::Protocol { kind, reason },
        }
    }
}

/// Moves frames both ways until the connection ends, then reports
/// `Disconnected` and leaves the registry. Returns how long it was up.
pub(crate) async fn serve(inner: &Arc<Inner>, established: Established) -> Duration {
    let Established { shared, lanes } = established;
    let Lanes {
        send: [send_urgent, send_bulk],
        recv: [recv_urgent, recv_bulk],
    } = lanes;
    let end = tokio::select! {
        end = read_lane(inner, &shared, Lane::Urgent, recv_urgent) => end,
        end = read_lane(inner, &shared, Lane::Bulk, recv_bulk) => end,
        end = write_lane(inner, &shared, Lane::Urgent, send_urgent) => end,
        end = write_lane(inner, &shared, Lane::Bulk, send_bulk) => end,
        end = read_datagrams(inner, &shared) => end,
        end = refuse_streams(&shared.conn) => end,
        _ = shared.conn.closed() => End::Lost,
    };
    match end {
        End::Protocol { kind, reason } => {
            inner.totals.frame_error(kind);
            tracing::warn!(peer = %shared.peer_name, conn = %shared.id, %reason, "closing connection: protocol violation");
            shared.close(code::PROTOCOL, &reason);
        }
        End::EventsClosed => shared.close(code::NORMAL, "transport shutting down"),
        End::Lost => {}
    }
    for lane in Lane::ALL {
        shared.queue(lane).close();
    }
    let reason = match shared.close_reason() {
        Some(reason) => reason,
        None => match shared.conn.close_reason() {
            Some(e) => describe(&e),
            None => {
                shared.close(code::NORMAL, "lane stream lost");
                "lane stream lost".to_owned()
            }
        },
    };
    let lived = shared.since.elapsed();
    tracing::info!(peer = %shared.peer_name, conn = %shared.id, %reason, "peer disconnected");
    inner
        .emit(TransportEvent::Disconnected {
            conn: shared.id,
            reason,
        })
        .await;
    {
        let mut reg = inner.registry();
        reg.remove(&shared);
        inner.publish_states(&reg);
    }
    shared.mark_gone();
    lived
}

async fn read_lane(inner: &Inner, shared: &ConnShared, lane: Lane, mut recv: RecvStream) -> End {
    loop {
        let bytes: Bytes = match read_frame(&mut recv, inner.config.max_frame_bytes).await {
            Ok(bytes) => bytes,
            Err(fail) => return fail.into(),
        };
        shared.frames_in.fetch_add(1, Ordering::Relaxed);
        shared
            .bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        inner.metrics.frame_in(lane, bytes.len());
        let event = TransportEvent::Frame {
            conn: shared.id,
            lane,
            bytes,
        };
        if !inner.emit(event).await {
            return End::EventsClosed;
        }
    }
}

/// Passes each datagram on as it comes; QUIC has already bounded its size to
/// one packet.
async fn read_datagrams(inner: &Inner, shared: &ConnShared) -> End {
    loop {
        let Ok(bytes) = shared.conn.read_datagram().await else {
            return End::Lost;
        };
        inner.metrics.datagram_in(bytes.len());
        let event = TransportEvent::Datagram {
            conn: shared.id,
            bytes,
        };
        if !inner.emit(event).await {
            return End::EventsClosed;
        }
    }
}

async fn write_lane(inner: &Inner, shared: &ConnShared, lane: Lane, mut send: SendStream) -> End {
    let mut batch = Vec::new();
    loop {
        if !shared.queue(lane).pop_batch(&mut batch).await {
            // Only closed once serving is over; nothing more to do here.
            return std::future::pending().await;
        }
        match write_frames(&mut send, &batch).await {
            Ok(()) => {
                let bytes: usize = batch.iter().map(Bytes::len).sum();
                let frames = batch.len() as u64;
                shared.frames_out.fetch_add(frames, Ordering::Relaxed);
                shared.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
                inner.metrics.frames_out(lane, frames, bytes as u64);
            }
            Err(WriteError::Stopped(code)) => {
                return End::Protocol {
                    kind: "protocol",
                    reason: format!("peer stopped the {} lane (code {code})", lane.as_str()),
                }
            }
            Err(_) => return End::Lost,
        }
        batch.clear();
    }
}

/// Lanes are the only streams; anything more is a protocol violation.
async fn refuse_streams(conn: &quinn::Connection) -> End {
    let opened = tokio::select! {
        uni = conn.accept_uni() => uni.is_ok(),
        bi = conn.accept_bi() => bi.is_ok(),
    };
    if opened {
        End::Protocol {
            kind: "protocol",
            reason: "unexpected extra stream".into(),
        }
    } else {
        End::Lost
    }
}
