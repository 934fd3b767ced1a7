//! The binary form of an [`EdgeFilter`] (laid out in the crate docs).

use veto_core::{NodeId, RecordId};
use xorf::{BinaryFuse16, Descriptor};

use crate::{BuildError, Cutoff, CutoffKind, EdgeFilter};

/// The first four bytes of every filter.
pub const MAGIC: [u8; 4] = *b"VFLT";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;

const FLAG_FUSE: u16 = 1;
/// magic, version, flags, key count, cutoff count, fingerprint count.
const FIXED: usize = 4 + 2 + 2 + 8 + 4 + 4;
const DESCRIPTOR: usize = 8 + 4 + 4 + 4;
const CRC: usize = 4;
/// xorf never makes segments longer than this.
const MAX_SEGMENT: u32 = 1 << 18;
/// The smallest cutoff entry: kind, has-issuer, empty key, before, expiry,
/// origin, seq, revoked_at.
const MIN_CUTOFF: usize = 1 + 1 + 2 + 8 * 5;

/// Why bytes are not a filter this crate can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before a field does.
    #[error("truncated: {what} needs {need} bytes at offset {at}, {have} are left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Its offset.
        at: usize,
        /// Bytes it needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// Not a veto filter at all.
    #[error("not a veto filter (magic {0:02x?})")]
    BadMagic([u8; 4]),
    /// A version this build cannot read.
    #[error("filter version {0} is not supported; this build reads version {VERSION}")]
    UnsupportedVersion(u16),
    /// Flag bits this version does not define.
    #[error("unknown flags {0:#06x}")]
    UnknownFlags(u16),
    /// The checksum does not match: the bytes were damaged.
    #[error("checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    BadChecksum {
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the bytes.
        computed: u32,
    },
    /// A count is larger than the bytes could hold.
    #[error("{what} count {count} does not fit in the {have} bytes left")]
    CountTooLarge {
        /// What is counted.
        what: &'static str,
        /// The count.
        count: u64,
        /// Bytes left.
        have: usize,
    },
    /// The fuse filter's shape is inconsistent.
    #[error("bad fuse filter: {0}")]
    BadFilter(&'static str),
    /// A field holds a value the format does not allow.
    #[error("bad {0}")]
    BadField(&'static str),
    /// Bytes after the checksummed body.
    #[error("{0} trailing bytes after the cutoff table")]
    TrailingBytes(usize),
}

/// Refuses a filter whose strings or counts the format cannot carry, so
/// that [`encode`] never has to.
pub(crate) fn check_encodable(f: &EdgeFilter) -> Result<(), BuildError> {
    let short = |what, s: &str| {
        if s.len() > usize::from(u16::MAX) {
            Err(BuildError::TooLong(what, s.len()))
        } else {
            Ok(())
        }
    };
    short("the cursor", &f.cursor)?;
    for c in &f.cutoffs {
        short("a cutoff key", &c.key)?;
        if let Some(i) = &c.iss {
            short("an issuer", i)?;
        }
    }
    u32::try_from(f.cutoffs.len()).map_err(|_| BuildError::TooMany("cutoffs"))?;
    let fps = f.fuse.as_ref().map_or(0, |x| x.fingerprints.len());
    u32::try_from(fps).map_err(|_| BuildError::TooMany("fingerprints"))?;
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Lengths were bounded by `check_encodable` at build time.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

pub(crate) fn encode(f: &EdgeFilter) -> Vec<u8> {
    let fps: &[u16] = f.fuse.as_ref().map_or(&[], |x| &x.fingerprints);
    let mut out = Vec::with_capacity(FIXED + DESCRIPTOR + 2 * fps.len() + 64 * f.cutoffs.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let flags = if f.fuse.is_some() { FLAG_FUSE } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&f.keys.to_le_bytes());
    out.extend_from_slice(&(f.cutoffs.len() as u32).to_le_bytes());
    out.extend_from_slice(&(fps.len() as u32).to_le_bytes());
    put_str(&mut out, &f.cursor);
    let d = f.fuse.as_ref().map(|x| &x.descriptor);
    out.extend_from_slice(&d.map_or(0, |d| d.seed).to_le_bytes());
    out.extend_from_slice(&d.map_or(0, |d| d.segment_length).to_le_bytes());
    out.extend_from_slice(&d.map_or(0, |d| d.segment_length_mask).to_le_bytes());
    out.extend_from_slice(&d.map_or(0, |d| d.segment_count_length).to_le_bytes());
    for fp in fps {
        out.extend_from_slice(&fp.to_le_bytes());
    }
    for c in &f.cutoffs {
        out.push(match c.kind {
            CutoffKind::Subject => 1,
            CutoffKind::Client => 2,
            CutoffKind::Issuer => 3,
        });
        match &c.iss {
            Some(i) => {
                out.push(1);
                put_str(&mut out, i);
            }
            None => out.push(0),
        }
        put_str(&mut out, &c.key);
        out.extend_from_slice(&c.before.to_le_bytes());
        out.extend_from_slice(&c.expires_at.to_le_bytes());
        out.extend_from_slice(&c.id.origin.get().to_le_bytes());
        out.extend_from_slice(&c.id.seq.to_le_bytes());
        out.extend_from_slice(&c.revoked_at.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A cursor over the checksummed body.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.left() {
            return Err(DecodeError::Truncated {
                what,
                at: self.at,
                need: n,
                have: self.left(),
            });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(what, N)?);
        Ok(a)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_le_bytes)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_le_bytes)
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn str(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = self.u16(what)?;
        let raw = self.take(what, usize::from(len))?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadField(what))
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<EdgeFilter, DecodeError> {
    // The header first, so that a wrong magic or version is named as such
    // rather than as a bad checksum.
    let mut head = Reader { bytes, at: 0 };
    let magic = head.array::<4>("magic")?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    let version = head.u16("version")?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if bytes.len() < FIXED + CRC {
        return Err(DecodeError::Truncated {
            what: "header",
            at: 0,
            need: FIXED + CRC,
            have: bytes.len(),
        });
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(crc);
    let stored = u32::from_le_bytes(stored);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(DecodeError::BadChecksum { stored, computed });
    }
    let mut r = Reader { bytes: body, at: 6 };
    let flags = r.u16("flags")?;
    if flags & !FLAG_FUSE != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let keys = r.u64("key count")?;
    let n_cutoffs = r.u32("cutoff count")?;
    let n_fps = r.u32("fingerprint count")?;
    let cursor = r.str("cursor")?;
    let descriptor = Descriptor {
        seed: r.u64("fuse seed")?,
        segment_length: r.u32("segment length")?,
        segment_length_mask: r.u32("segment length mask")?,
        segment_count_length: r.u32("segment count length")?,
    };
    let fp_bytes = u64::from(n_fps) * 2;
    if fp_bytes > r.left() as u64 {
        return Err(DecodeError::CountTooLarge {
            what: "fingerprint",
            count: u64::from(n_fps),
            have: r.left(),
        });
    }
    let raw = r.take("fingerprints", n_fps as usize * 2)?;
    let fuse = if flags & FLAG_FUSE != 0 {
        check_shape(&descriptor, n_fps)?;
        let fingerprints: Box<[u16]> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(BinaryFuse16 {
            descriptor,
            fingerprints,
        })
    } else {
        let empty = descriptor.seed == 0
            && descriptor.segment_length == 0
            && descriptor.segment_length_mask == 0
            && descriptor.segment_count_length == 0;
        if n_fps != 0 || !empty {
            return Err(DecodeError::BadFilter(
                "a filter without the fuse flag holds fingerprints",
            ));
        }
        None
    };
    if u64::from(n_cutoffs) * MIN_CUTOFF as u64 > r.left() as u64 {
        return Err(DecodeError::CountTooLarge {
            what: "cutoff",
            count: u64::from(n_cutoffs),
            have: r.left(),
        });
    }
    let mut cutoffs = Vec::with_capacity(n_cutoffs as usize);
    for _ in 0..n_cutoffs {
        let kind = match r.u8("cutoff kind")? {
            1 => CutoffKind::Subject,
            2 => CutoffKind::Client,
            3 => CutoffKind::Issuer,
            _ => return Err(DecodeError::BadField("cutoff kind")),
        };
        let iss = match r.u8("cutoff issuer flag")? {
            0 => None,
            1 => Some(r.str("cutoff issuer")?),
            _ => return Err(DecodeError::BadField("cutoff issuer flag")),
        };
        if kind == CutoffKind::Issuer && iss.is_some() {
            return Err(DecodeError::BadField("issuer cutoff with a qualifier"));
        }
        let key = r.str("cutoff key")?;
        let before = r.u64("cutoff before")?;
        let expires_at = r.u64("cutoff expiry")?;
        let origin = r.u64("cutoff record origin")?;
        if origin == 0 {
            // NodeId::new would map it to 1: refuse rather than alter it.
            return Err(DecodeError::BadField("cutoff record origin"));
        }
        let seq = r.u64("cutoff record seq")?;
        let revoked_at = r.u64("cutoff revoked_at")?;
        cutoffs.push(Cutoff {
            kind,
            iss,
            key,
            before,
            expires_at,
            id: RecordId {
                origin: NodeId::new(origin),
                seq,
            },
            revoked_at,
        });
    }
    if r.left() != 0 {
        return Err(DecodeError::TrailingBytes(r.left()));
    }
    Ok(EdgeFilter::new(cursor, keys, fuse, cutoffs))
}

/// Refuses a descriptor whose probes could fall outside the fingerprints:
/// xorf indexes them without bounds checks of its own beyond the slice's.
fn check_shape(d: &Descriptor, n_fps: u32) -> Result<(), DecodeError> {
    let len = d.segment_length;
    if len == 0 || !len.is_power_of_two() || len > MAX_SEGMENT {
        return Err(DecodeError::BadFilter(
            "segment length is not a power of two up to 2^18",
        ));
    }
    if d.segment_length_mask != len - 1 {
        return Err(DecodeError::BadFilter(
            "segment length mask is not segment length - 1",
        ));
    }
    if d.segment_count_length == 0 || !d.segment_count_length.is_multiple_of(len) {
        return Err(DecodeError::BadFilter(
            "segment count length is not a positive multiple of the segment length",
        ));
    }
    // A probe lands below segment count length + 2 segment lengths.
    if u64::from(d.segment_count_length) + 2 * u64::from(len) > u64::from(n_fps) {
        return Err(DecodeError::BadFilter(
            "fewer fingerprints than the segments need",
        ));
    }
    Ok(())
}
