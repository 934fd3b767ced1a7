//! Invariants of the wire protocol between nodes (`veto_gossip::proto`): the
//! payload decoder, and the length-prefixed frames around it.

use veto_gossip::proto::{
    self, decode, encode, encode_frame, encoded_len, parse_frame_header, DecodeError, Message,
    FRAME_HEADER_BYTES, MAX_FRAME_BYTES,
};

/// Decodes `bytes` as one frame payload. Whatever decodes is a valid message
/// that encodes again, within the frame limit, to bytes that decode to the same
/// message; and an error is one that the bytes can have. The version read
/// from a payload that only starts like a `Hello` (`hello_version`) is that
/// `Hello`'s, if it decodes as one.
pub fn check_payload(bytes: &[u8]) {
    let version = proto::hello_version(bytes);
    match decode(bytes) {
        Ok(Message::Hello(hello)) => {
            assert_eq!(version, Some(hello.version));
            check_message(&Message::Hello(hello));
        }
        Ok(msg) => {
            assert_eq!(version, None, "{} read as a Hello", msg.kind());
            check_message(&msg);
        }
        Err(DecodeError::Empty) => assert!(bytes.is_empty()),
        Err(DecodeError::TooLarge { len }) => assert!(len == bytes.len() && len > MAX_FRAME_BYTES),
        Err(e) => {
            assert!(!bytes.is_empty() && bytes.len() <= MAX_FRAME_BYTES, "{e}");
            assert!(!e.to_string().is_empty());
        }
    }
}

/// A decoded message is valid, and survives encoding: `decode(encode(m)) == m`,
/// the encoding is canonical (`encode(decode(encode(m))) == encode(m)`), its
/// length is what `encoded_len` predicts, and its frame's header reads back to
/// that length.
pub fn check_message(msg: &Message) {
    assert_eq!(
        msg.validate(),
        Ok(()),
        "decode let an invalid message through"
    );
    let bytes = match encode(msg) {
        Ok(b) => b,
        Err(e) => panic!("a decoded {} message does not encode: {e}", msg.kind()),
    };
    assert_eq!(
        encoded_len(msg),
        bytes.len(),
        "encoded_len of {}",
        msg.kind()
    );
    let again =
        decode(&bytes).unwrap_or_else(|e| panic!("{} does not decode again: {e}", msg.kind()));
    assert_eq!(&again, msg);
    assert_eq!(encode(&again).ok().as_deref(), Some(&bytes[..]));
    let frame = encode_frame(msg).unwrap_or_else(|e| panic!("{e}"));
    let (header, payload) = frame.split_at(FRAME_HEADER_BYTES);
    let header: [u8; FRAME_HEADER_BYTES] = header.try_into().unwrap_or_default();
    assert_eq!(parse_frame_header(header), Ok(payload.len()));
    assert_eq!(payload, &bytes[..]);
}

/// Reads `stream` as a connection's bytes: frames one after another, as a
/// transport reads them, until the bytes run out or a frame is refused. A
/// header is refused before its body is looked at; every frame read is
/// checked as [`check_payload`] does. Returns the messages read.
pub fn check_stream(stream: &[u8]) -> Vec<Message> {
    let mut rest = stream;
    let mut read = Vec::new();
    while let Some((header, body)) = rest.split_first_chunk::<FRAME_HEADER_BYTES>() {
        let len = match parse_frame_header(*header) {
            Ok(len) => len,
            Err(DecodeError::Empty) => {
                assert_eq!(*header, [0; FRAME_HEADER_BYTES]);
                break;
            }
            Err(DecodeError::TooLarge { len }) => {
                assert!(len > MAX_FRAME_BYTES);
                break;
            }
            Err(e) => panic!("a frame header failed with {e}"),
        };
        assert!((1..=MAX_FRAME_BYTES).contains(&len));
        let Some(payload) = body.get(..len) else {
            break;
        };
        check_payload(payload);
        match decode(payload) {
            Ok(msg) => read.push(msg),
            Err(_) => break,
        }
        rest = &body[len..];
    }
    // Whatever was read, written back as frames, reads back the same.
    let mut written = Vec::new();
    for m in &read {
        written.extend(encode_frame(m).unwrap_or_else(|e| panic!("{e}")));
    }
    if !read.is_empty() {
        let mut again = Vec::new();
        let mut rest = &written[..];
        while let Some((header, body)) = rest.split_first_chunk::<FRAME_HEADER_BYTES>() {
            let len = parse_frame_header(*header).unwrap_or_else(|e| panic!("{e}"));
            again.push(decode(&body[..len]).unwrap_or_else(|e| panic!("{e}")));
            rest = &body[len..];
        }
        assert_eq!(again, read);
    }
    read
}

/// The protocol version this build speaks, for seed inputs.
pub const PROTOCOL_VERSION: u32 = proto::PROTOCOL_VERSION;
