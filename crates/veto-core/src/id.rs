//! Identities: which node authored a record, and where it sits in that node's log.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A node's permanent identity: a random non-zero 64-bit number made once, at the
/// node's first start, and kept in its data directory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(u64);

impl NodeId {
    /// Wraps a raw id. Zero is not a valid id (uhlc reserves it), so it is mapped to one.
    pub fn new(raw: u64) -> Self {
        NodeId(raw.max(1))
    }

    /// The raw 64-bit value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// A string that is not a valid [`NodeId`] or [`RecordId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed id {0:?}: expected 16 hex digits, optionally followed by -<seq>")]
pub struct ParseIdError(pub String);

impl FromStr for NodeId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // `from_str_radix` alone would also take a leading `+`: an id has one
        // spelling (up to the case of its hex digits), the one it prints as.
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseIdError(s.to_owned()));
        }
        match u64::from_str_radix(s, 16) {
            Ok(v) if v != 0 => Ok(NodeId(v)),
            _ => Err(ParseIdError(s.to_owned())),
        }
    }
}

/// A record's position in its origin's log. Sequence numbers start at 1 and are
/// contiguous per origin, which is what lets a frontier summarise a whole log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId {
    /// The node that created the record.
    pub origin: NodeId,
    /// Its position in that node's log, from 1.
    pub seq: u64,
}

impl RecordId {
    /// The ids of `origin` with seqs in `seqs`, as a range of ids: ids order
    /// by origin, then seq, so a map keyed by id holds them in one run.
    pub fn span(
        origin: NodeId,
        seqs: &std::ops::RangeInclusive<u64>,
    ) -> std::ops::RangeInclusive<RecordId> {
        RecordId {
            origin,
            seq: *seqs.start(),
        }..=RecordId {
            origin,
            seq: *seqs.end(),
        }
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.origin, self.seq)
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({self})")
    }
}

impl FromStr for RecordId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseIdError(s.to_owned());
        let (origin, seq) = s.split_once('-').ok_or_else(err)?;
        let origin = origin.parse().map_err(|_| err())?;
        // Plain decimal as printed: no sign, no leading zero (so no seq 0 either).
        if !seq.bytes().all(|b| b.is_ascii_digit()) || seq.starts_with('0') {
            return Err(err());
        }
        let seq = seq.parse().map_err(|_| err())?;
        Ok(RecordId { origin, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_round_trips_through_text() {
        let id = RecordId {
            origin: NodeId::new(0xabc),
            seq: 42,
        };
        assert_eq!(id.to_string(), "0000000000000abc-42");
        assert_eq!(id.to_string().parse::<RecordId>(), Ok(id));
        assert!("0000000000000abc-0".parse::<RecordId>().is_err());
        assert!("xyz-1".parse::<RecordId>().is_err());
        assert!("0000000000000000-1".parse::<RecordId>().is_err());
        assert!("0000000000000abc-".parse::<RecordId>().is_err());
        assert_eq!("0000000000000ABC-42".parse::<RecordId>(), Ok(id));
    }

    /// Each id has one spelling, so ids compare equal exactly when their text does
    /// (up to hex case).
    #[test]
    fn only_the_printed_spelling_parses() {
        for bad in [
            "+000000000000abc-42",
            "0000000000000abc-+42",
            "0000000000000abc-042",
            "0000000000000abc-4_2",
            " 000000000000abc-42",
            "0000000000000abc-18446744073709551616",
        ] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad}");
        }
        assert!("+000000000000abc".parse::<NodeId>().is_err());
        assert!("-000000000000abc".parse::<NodeId>().is_err());
    }
}
