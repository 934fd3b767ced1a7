//! Encoding and decoding messages, and the length prefix around them.

use bincode::config::Config;
use bincode::enc::write::SizeWriter;
use serde::Serialize;

use super::{
    Invalid, Message, FRAME_HEADER_BYTES, MAX_FRAME_BYTES, MESSAGE_TAGS, PROTOCOL_VERSION,
};

fn config() -> impl Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Why a frame could not be turned into a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is longer than [`MAX_FRAME_BYTES`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge {
        /// The frame's length.
        len: usize,
    },
    /// The frame is empty.
    #[error("empty frame")]
    Empty,
    /// The frame ends in the middle of a message.
    #[error("frame ends in the middle of a message")]
    Truncated,
    /// The message tag is not one this version knows: the peer speaks another
    /// protocol version, or sends garbage.
    #[error("unknown message tag {tag} (this node speaks protocol version {PROTOCOL_VERSION})")]
    UnknownMessage {
        /// The tag read.
        tag: u32,
    },
    /// Bytes are left over after one whole message.
    #[error("{extra} bytes left over after the message")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The bytes do not form a message of the known layout.
    #[error("malformed message: {detail}")]
    Malformed {
        /// What the decoder found wrong.
        detail: String,
    },
    /// The message decodes but breaks the protocol's limits.
    #[error("invalid {kind} message: {error}")]
    Invalid {
        /// Which message.
        kind: &'static str,
        /// The limit it broke.
        error: Invalid,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would be longer than [`MAX_FRAME_BYTES`].
    #[error("{kind} message encodes to {len} bytes; the limit is {MAX_FRAME_BYTES}")]
    TooLarge {
        /// Which message.
        kind: &'static str,
        /// Its encoded length.
        len: usize,
    },
    /// The encoder failed.
    #[error("cannot encode {kind} message: {detail}")]
    Encoder {
        /// Which message.
        kind: &'static str,
        /// The encoder's error.
        detail: String,
    },
}

/// Encodes one message as a frame payload (without the length prefix).
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let bytes = bincode::serde::encode_to_vec(msg, config()).map_err(|e| EncodeError::Encoder {
        kind: msg.kind(),
        detail: e.to_string(),
    })?;
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(EncodeError::TooLarge {
            kind: msg.kind(),
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

/// Encodes one message as a whole frame: the big-endian `u32` length, then the
/// payload.
pub fn encode_frame(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let payload = encode(msg)?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    // The payload is at most MAX_FRAME_BYTES, which fits a u32.
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Reads a frame's length prefix, refusing an empty or oversized frame before
/// its body is read.
pub fn parse_frame_header(header: [u8; FRAME_HEADER_BYTES]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(header) as usize;
    match len {
        0 => Err(DecodeError::Empty),
        n if n > MAX_FRAME_BYTES => Err(DecodeError::TooLarge { len: n }),
        n => Ok(n),
    }
}

/// Decodes one frame payload (without the length prefix) into a checked
/// message. Never panics, whatever the bytes.
///
/// A `Hello` of another protocol version decodes fine: refusing it, with a
/// reason the peer can read, is the engine's job.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    // The tag is read on its own so that a message from a newer protocol is
    // named as such rather than as garbage.
    let (tag, _) =
        bincode::decode_from_slice::<u32, _>(bytes, bincode::config::standard()).map_err(map)?;
    if tag >= MESSAGE_TAGS {
        return Err(DecodeError::UnknownMessage { tag });
    }
    let (msg, used): (Message, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(map)?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    msg.validate().map_err(|error| DecodeError::Invalid {
        kind: msg.kind(),
        error,
    })?;
    Ok(msg)
}

/// The protocol version a frame claims, if it starts as a `Hello` does: its
/// tag, then its version. A `Hello` of another version may not decode as
/// this version's (its fields differ), but its first two numbers keep their
/// place in every version, so a peer that speaks another version is told
/// so, not that it sent garbage. Never panics, whatever the bytes.
pub fn hello_version(bytes: &[u8]) -> Option<u32> {
    let (tag_version, _) =
        bincode::decode_from_slice::<(u32, u32), _>(bytes, bincode::config::standard()).ok()?;
    match tag_version {
        (HELLO_TAG, version) => Some(version),
        _ => None,
    }
}

/// `Hello`'s tag: the first variant of [`Message`].
const HELLO_TAG: u32 = 0;

fn map(e: bincode::error::DecodeError) -> DecodeError {
    match e {
        bincode::error::DecodeError::UnexpectedEnd { .. } => DecodeError::Truncated,
        bincode::error::DecodeError::LimitExceeded => DecodeError::Malformed {
            detail: "a length field claims more than the frame holds".to_owned(),
        },
        other => DecodeError::Malformed {
            detail: other.to_string(),
        },
    }
}

/// The encoded length of a message's payload, without encoding it into memory.
pub fn encoded_len(msg: &Message) -> usize {
    value_len(msg)
}

/// The encoded length of any part of a message (a record, a range list).
pub(crate) fn value_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut writer = SizeWriter::default();
    match bincode::serde::encode_into_writer(value, &mut writer, config()) {
        Ok(()) => writer.bytes_written,
        // Message types always encode; if one ever did not, calling it too
        // large keeps it out of any frame.
        Err(_) => usize::MAX,
    }
}
