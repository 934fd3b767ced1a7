//! The JSON reading behind [`super::decode_in`]: the members of one object
//! that a lookup uses, borrowed where they have no escapes, with every other
//! member parsed and validated exactly as `serde_json::Value` would (numbers,
//! escapes, UTF-8, nesting depth) but not kept. Duplicate members keep the
//! last value, as a map does.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A member's value as far as a lookup cares: a string, null, a number, or
/// anything else (which is an error only if the lookup needs that member).
#[derive(Debug, Default)]
pub(super) enum Val<'a> {
    /// Not in the object.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A string.
    Str(Cow<'a, str>),
    /// A non-negative integer that fits 64 bits.
    Uint(u64),
    /// A negative integer or a float, kept as the f64 that `Value::as_f64` gives.
    Float(f64),
    /// A boolean, an array or an object.
    Other,
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Val<'de>, E> {
        Ok(Val::Other)
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::Uint(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Val::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Val::Other)
    }
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// A value that is parsed and validated like `serde_json::Value` but not kept.
/// Unlike `IgnoredAny`, it rejects what `Value` rejects (out-of-range numbers,
/// lone surrogates), so a token is never accepted for a claim it skipped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(ValVisitor).map(|_| Skip)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        match d.deserialize_str(ValVisitor)? {
            Val::Str(s) => Ok(Key(s)),
            _ => Err(de::Error::custom("object key is not a string")),
        }
    }
}

/// Collects the named members of one JSON object (the last of duplicates wins)
/// and validates the others.
struct Members<'n, const N: usize> {
    names: &'n [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Members<'_, N> {
    type Value = [Val<'de>; N];

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<[Val<'de>; N], D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Members<'_, N> {
    type Value = [Val<'de>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<[Val<'de>; N], A::Error> {
        let mut out: [Val<'de>; N] = std::array::from_fn(|_| Val::Absent);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.names.iter().position(|n| *n == key) {
                Some(i) => out[i] = map.next_value::<Val<'de>>()?,
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(out)
    }
}

/// The members `names` of the JSON object `json`, in that order, or `None`
/// when `json` is not exactly one valid JSON object.
pub(super) fn members<'de, const N: usize>(
    json: &'de [u8],
    names: &[&'static str; N],
) -> Option<[Val<'de>; N]> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let out = Members { names }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(out)
}
