//! Request bodies: the size limit, JSON decoding with precise errors, and arrays
//! with an item limit whose errors name the failing item.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;

use crate::error::{code, ApiError};

/// The largest request body accepted, in bytes (1 MiB). Larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The most items a batch (revocations or checks) may hold.
pub const MAX_BATCH_ITEMS: usize = 10_000;

/// The raw request body, read under the router's body limit, with every failure
/// (including 413) in the JSON error shape. It ignores `Content-Type`, so
/// `curl -d` works without extra headers.
pub(crate) struct Body(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Body, ApiError> {
        // A declared length over the limit is refused at once, rather than
        // after waiting for (and reading) a megabyte of a body that will be
        // refused anyway.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(crate::error::too_large());
        }
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(ApiError::from)
    }
}

/// Maps a serde_json error: broken syntax is `invalid_json`, the wrong shape is
/// `invalid_request`.
fn json_error(err: &serde_json::Error, prefix: &str) -> ApiError {
    match err.classify() {
        Category::Data => ApiError::invalid(format!("{prefix}{err}")),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid_json(format!("{prefix}malformed JSON: {err}"))
        }
    }
}

/// serde stops at the first thing of the wrong type, which can come before a
/// syntax error further on (`{` where an array was expected). Broken JSON is
/// reported as such, whatever its shape, so the body is checked again for
/// syntax alone. This runs on the error path only.
fn syntax_first(body: &[u8], err: ApiError) -> ApiError {
    match serde_json::from_slice::<IgnoredAny>(body) {
        Err(e) if e.classify() != Category::Data => json_error(&e, ""),
        _ => err,
    }
}

/// Decodes one JSON value from a body.
pub(crate) fn parse_json<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| syntax_first(body, json_error(&e, "")))
}

enum ArrayFailure {
    TooMany,
    Item(usize),
}

struct ArraySeed<'c, T> {
    max: usize,
    failure: &'c Cell<Option<ArrayFailure>>,
    item: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ArraySeed<'_, T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ArraySeed<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        loop {
            if out.len() == self.max {
                // Stop at the first item past the limit rather than parse them all.
                return match seq.next_element::<IgnoredAny>()? {
                    None => Ok(out),
                    Some(_) => {
                        self.failure.set(Some(ArrayFailure::TooMany));
                        Err(serde::de::Error::custom("too many items"))
                    }
                };
            }
            match seq.next_element::<T>() {
                Ok(Some(item)) => out.push(item),
                Ok(None) => return Ok(out),
                Err(e) => {
                    self.failure.set(Some(ArrayFailure::Item(out.len())));
                    return Err(e);
                }
            }
        }
    }
}

/// Decodes a JSON array of at most `max` items. An error names the index of the
/// item at fault; more than `max` items is 413 `too_many_items`.
pub(crate) fn parse_array<'de, T: Deserialize<'de>>(
    body: &'de [u8],
    max: usize,
) -> Result<Vec<T>, ApiError> {
    let failure = Cell::new(None);
    let seed = ArraySeed {
        max,
        failure: &failure,
        item: PhantomData,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    result.map_err(|e| match failure.take() {
        Some(ArrayFailure::TooMany) => too_many(max),
        Some(ArrayFailure::Item(i)) => syntax_first(body, json_error(&e, &format!("item {i}: "))),
        None => syntax_first(body, json_error(&e, "")),
    })
}

/// 413 for a batch over the item limit.
pub(crate) fn too_many(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        code::TOO_MANY_ITEMS,
        format!("a batch holds at most {max} items"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_error_names_the_item_and_its_kind() {
        let ok: Vec<u32> = parse_array(b"[1,2,3]", 3).unwrap();
        assert_eq!(ok, vec![1, 2, 3]);

        let e = parse_array::<u32>(b"[1,\"x\",3]", 10).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        assert!(e.message.starts_with("item 1: "), "{}", e.message);

        let e = parse_array::<u32>(b"[1,2", 10).unwrap_err();
        assert_eq!(e.code, code::INVALID_JSON);

        let e = parse_array::<u32>(b"[1,2,3,4]", 3).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.code, code::TOO_MANY_ITEMS);

        let e = parse_array::<u32>(b"{\"a\":1}", 3).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        assert!(e.message.contains("a JSON array"), "{}", e.message);

        let e = parse_array::<u32>(b"{", 3).unwrap_err();
        assert_eq!(e.code, code::INVALID_JSON);

        let e = parse_array::<u32>(b"[\"x\", }", 3).unwrap_err();
        assert_eq!(e.code, code::INVALID_JSON);

        let e = parse_array::<u32>(b"[1] x", 3).unwrap_err();
        assert_eq!(e.code, code::INVALID_JSON);
    }
}
