//! Resident memory of the lookup index per token revocation.
//!
//! Ignored by default: it allocates a few hundred megabytes and wants a release
//! build. Run it with
//!
//! ```text
//! cargo test -p veto-core --release --test index_memory -- --ignored --nocapture
//! ```
//!
//! Set `VETO_MEM_RECORDS` to change the number of records (default ten million).

use std::fmt::Write as _;

use veto_core::{LookupIndex, NodeId, RecordId, Target};

/// Resident set size in bytes, from /proc/self/statm (Linux only).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Every Linux target veto runs on uses 4 KiB pages.
    Some(pages * 4096)
}

/// Peak resident set size in bytes so far, from /proc/self/status.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn load(n: u64, reserve: bool) -> Option<(LookupIndex, f64)> {
    let before = resident_bytes()?;
    let mut index = LookupIndex::new();
    if reserve {
        index.reserve_tokens(n as usize);
    }
    let origins = [NodeId::new(0xa1), NodeId::new(0xb2), NodeId::new(0xc3)];
    let issuers = ["https://login.example.com", "https://idp.example.net"];
    let mut jti = String::new();
    for i in 0..n {
        jti.clear();
        // A uuid-shaped jti, built without keeping any string around: the
        // measurement is of the index alone.
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        write!(
            jti,
            "{:08x}-{:04x}-4{:03x}-{:016x}",
            x >> 32,
            x & 0xffff,
            i & 0xfff,
            i
        )
        .unwrap();
        let target = Target::Token {
            iss: Some(issuers[(i % 2) as usize].to_owned()),
            jti: std::mem::take(&mut jti),
        };
        let id = RecordId {
            origin: origins[(i % 3) as usize],
            seq: i / 3 + 1,
        };
        index.insert(id, &target).unwrap();
        if let Target::Token { jti: s, .. } = target {
            jti = s;
        }
    }
    assert_eq!(index.len() as u64, n);
    let after = resident_bytes()?;
    Some((index, (after.saturating_sub(before)) as f64 / n as f64))
}

#[test]
#[ignore = "allocates hundreds of megabytes; run in release with --ignored"]
fn bytes_per_token_revocation() {
    let n: u64 = std::env::var("VETO_MEM_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let Some(base) = resident_bytes() else {
        eprintln!("no /proc/self/statm here; nothing measured");
        return;
    };
    let Some((index, grown)) = load(n, false) else {
        return;
    };
    // While the table grows, the old and the new table are briefly both alive.
    let peak = peak_resident_bytes().map_or(f64::NAN, |p| p.saturating_sub(base) as f64 / n as f64);
    drop(index);
    let Some((index, reserved)) = load(n, true) else {
        return;
    };
    println!(
        "{n} token revocations: {grown:.1} resident bytes per record when grown one by one \
         (peak {peak:.1} while growing), {reserved:.1} when reserved up front"
    );
    drop(index);
    assert!(
        grown < 64.0,
        "the index alone uses {grown:.1} bytes per record"
    );
}
