//! The durability marker: a small file beside sled's that remembers how many
//! ids the store had covered durably at its last write.
//!
//! sled recovers from a damaged log by cutting it at the first entry whose
//! checksum fails, as it would after a torn write. A flipped byte in the middle
//! of the file therefore drops every write after it, silently, and the store
//! would come up with fewer records than it acknowledged. Nothing inside sled
//! can tell, since the cut takes sled's own bookkeeping with it. This file can:
//! it is written after every flush with the covered count the flush made
//! durable (which never shrinks: pruning keeps ids covered), and checked at
//! open. A store that covers fewer ids than the marker says lost acknowledged
//! writes.
//!
//! The marker is a lower bound. It is written after sled's flush and not
//! fsynced on the write path (a process crash keeps it; after a power loss it
//! may be a little behind, never ahead), so it never raises a false alarm.
//! Layout, 24 bytes: `VETOMARK`, the covered count (u64 BE), then the first 8
//! bytes of the FNV-1a hash of the 16 before (BE).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The marker's file name in the data directory.
pub(crate) const MARKER_FILE: &str = "durable-mark";

const MAGIC: &[u8; 8] = b"VETOMARK";
const LEN: usize = 24;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn encode(covered: u64) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&covered.to_be_bytes());
    let sum = fnv1a(&out[..16]);
    out[16..].copy_from_slice(&sum.to_be_bytes());
    out
}

/// What reading the marker found.
#[derive(Debug)]
pub(crate) enum MarkerRead {
    /// No marker: a new data directory, or one written by an older veto.
    Absent,
    /// The covered count of the last recorded write.
    Covered(u64),
    /// The file exists but is not a valid marker.
    Damaged(String),
}

/// Reads the marker of `dir`.
pub(crate) fn read(dir: &Path) -> MarkerRead {
    let path = dir.join(MARKER_FILE);
    let mut bytes = Vec::new();
    match File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return MarkerRead::Absent,
        Err(e) => return MarkerRead::Damaged(format!("cannot read {}: {e}", path.display())),
        Ok(_) => {}
    }
    if bytes.len() != LEN || &bytes[..8] != MAGIC {
        return MarkerRead::Damaged(format!(
            "{} is not a veto durability marker",
            path.display()
        ));
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&bytes[16..]);
    if fnv1a(&bytes[..16]) != u64::from_be_bytes(sum) {
        return MarkerRead::Damaged(format!("{} fails its checksum", path.display()));
    }
    let mut covered = [0u8; 8];
    covered.copy_from_slice(&bytes[8..16]);
    MarkerRead::Covered(u64::from_be_bytes(covered))
}

/// The open marker file and the highest count it holds.
pub(crate) struct Marker {
    path: PathBuf,
    file: Option<File>,
    /// The count on disk: only ever raised.
    pub(crate) high: u64,
}

impl Marker {
    /// The marker of `dir`, holding at least `high`. The file is created (and
    /// fsynced) if need be.
    pub(crate) fn open(dir: &Path, high: u64) -> io::Result<Marker> {
        let path = dir.join(MARKER_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        file.write_all_at(&encode(high), 0)?;
        file.set_len(LEN as u64)?;
        file.sync_all()?;
        Ok(Marker {
            path,
            file: Some(file),
            high,
        })
    }

    /// Raises the marker to `covered` if it is higher.
    pub(crate) fn raise(&mut self, covered: u64) {
        if covered <= self.high {
            return;
        }
        let Some(file) = &self.file else {
            return;
        };
        match file.write_all_at(&encode(covered), 0) {
            Ok(()) => self.high = covered,
            Err(e) => {
                // The write it follows is durable all the same; only the
                // detection of a later loss gets weaker, so say so and go on.
                tracing::warn!(path = %self.path.display(), error = %e, "cannot update the durability marker");
                metrics::counter!("veto_store_marker_errors_total").increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path()), MarkerRead::Absent));
        let mut m = Marker::open(dir.path(), 5).unwrap();
        m.raise(3);
        assert!(matches!(read(dir.path()), MarkerRead::Covered(5)));
        m.raise(9_000_000_000);
        assert!(matches!(
            read(dir.path()),
            MarkerRead::Covered(9_000_000_000)
        ));
        let path = dir.path().join(MARKER_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read(dir.path()), MarkerRead::Damaged(_)));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(read(dir.path()), MarkerRead::Damaged(_)));
    }
}
