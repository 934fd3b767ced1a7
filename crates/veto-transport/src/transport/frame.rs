//! The lane wire format: a tag byte, then length-prefixed frames. Also the
//! application close codes and how connection errors read in logs.

use bytes::{Bytes, BytesMut};
use quinn::{ConnectionError, ReadError, ReadExactError, RecvStream, SendStream, WriteError};

use super::Lane;

/// Application close codes carried in QUIC CONNECTION_CLOSE frames.
pub(crate) mod code {
    use quinn::VarInt;

    /// Closed on request (`Transport::close`) or at shutdown.
    pub(crate) const NORMAL: VarInt = VarInt::from_u32(0);
    /// Another connection links the same pair of nodes.
    pub(crate) const DUPLICATE: VarInt = VarInt::from_u32(1);
    /// Both ends have the same node name.
    pub(crate) const SELF_CONNECT: VarInt = VarInt::from_u32(2);
    /// The peer broke the wire format.
    pub(crate) const PROTOCOL: VarInt = VarInt::from_u32(3);
    /// The peer was removed from this node's peer list.
    pub(crate) const REMOVED: VarInt = VarInt::from_u32(4);
    /// The node's admission refused the peer's certificate.
    pub(crate) const REFUSED: VarInt = VarInt::from_u32(5);
}

const TAG_URGENT: u8 = b'U';
const TAG_BULK: u8 = b'B';

pub(crate) fn lane_tag(lane: Lane) -> u8 {
    match lane {
        Lane::Urgent => TAG_URGENT,
        Lane::Bulk => TAG_BULK,
    }
}

pub(crate) fn lane_from_tag(tag: u8) -> Option<Lane> {
    match tag {
        TAG_URGENT => Some(Lane::Urgent),
        TAG_BULK => Some(Lane::Bulk),
        _ => None,
    }
}

/// Why reading a lane stopped.
pub(crate) enum ReadFail {
    /// The connection is gone; its own error says why.
    Lost,
    /// The peer broke the format; close with [`code::PROTOCOL`].
    Protocol {
        /// For the `veto_gossip_frame_errors_total{kind}` label.
        kind: &'static str,
        reason: String,
    },
}

impl ReadFail {
    pub(crate) fn protocol(kind: &'static str, reason: impl Into<String>) -> Self {
        ReadFail::Protocol {
            kind,
            reason: reason.into(),
        }
    }
}

fn from_read_error(e: ReadError) -> ReadFail {
    match e {
        ReadError::ConnectionLost(_) | ReadError::ClosedStream => ReadFail::Lost,
        ReadError::Reset(code) => ReadFail::protocol(
            "protocol",
            format!("peer reset a lane stream (code {code})"),
        ),
        other => ReadFail::protocol("protocol", format!("lane read failed: {other}")),
    }
}

/// Reads one byte: the lane tag at the start of a stream.
pub(crate) async fn read_tag(recv: &mut RecvStream) -> Result<Lane, ReadFail> {
    let mut tag = [0u8; 1];
    match recv.read_exact(&mut tag).await {
        Ok(()) => lane_from_tag(tag[0]).ok_or_else(|| {
            ReadFail::protocol("protocol", format!("unknown lane tag 0x{:02x}", tag[0]))
        }),
        Err(ReadExactError::FinishedEarly(_)) => Err(ReadFail::protocol(
            "protocol",
            "stream ended before its lane tag",
        )),
        Err(ReadExactError::ReadError(e)) => Err(from_read_error(e)),
    }
}

/// Reads the next frame. A stream that ends, cleanly or not, is a protocol
/// violation: lanes live as long as their connection.
pub(crate) async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Bytes, ReadFail> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => {
            return Err(ReadFail::protocol(
                "protocol",
                "peer finished a lane stream",
            ))
        }
        Err(ReadExactError::FinishedEarly(_)) => {
            return Err(ReadFail::protocol("truncated", "truncated frame length"))
        }
        Err(ReadExactError::ReadError(e)) => return Err(from_read_error(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(ReadFail::protocol(
            "too_large",
            format!("frame of {len} bytes exceeds the {max}-byte limit"),
        ));
    }
    let mut buf = BytesMut::zeroed(len);
    match recv.read_exact(&mut buf).await {
        Ok(()) => Ok(buf.freeze()),
        Err(ReadExactError::FinishedEarly(got)) => Err(ReadFail::protocol(
            "truncated",
            format!("truncated frame: {got} of {len} bytes"),
        )),
        Err(ReadExactError::ReadError(e)) => Err(from_read_error(e)),
    }
}

/// Writes `frames`, each behind its length. Frames were checked against the
/// limit (which fits in a u32) when queued.
pub(crate) async fn write_frames(
    send: &mut SendStream,
    frames: &[Bytes],
) -> Result<(), WriteError> {
    let mut chunks = Vec::with_capacity(frames.len() * 2);
    for frame in frames {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        chunks.push(Bytes::copy_from_slice(&len.to_be_bytes()));
        chunks.push(frame.clone());
    }
    send.write_all_chunks(&mut chunks).await
}

/// How a connection error reads in a `Disconnected` reason.
pub(crate) fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(close) => {
            let reason = String::from_utf8_lossy(&close.reason);
            let reason: String = reason.chars().take(200).collect();
            format!("closed by peer (code {}): {reason}", close.error_code)
        }
        ConnectionError::TimedOut => "idle timeout".into(),
        ConnectionError::Reset => "reset by peer (it restarted or lost the connection)".into(),
        ConnectionError::LocallyClosed => "closed".into(),
        other => other.to_string(),
    }
}
