//! Measures the edge filter's size, false-positive rate and build time, for
//! bench/RESULTS.md:
//!
//! ```text
//! cargo run --release -p veto-filter --example filter_figures
//! ```
//!
//! Token revocations with a 36-character jti and an issuer, as most are.
//! Build time is the filter build alone (hashing the keys, deduplicating,
//! constructing the fuse filter and the cutoff table) on one thread; the
//! records are made before the clock starts.

use std::time::Instant;

use veto_core::{Check, Target};
use veto_filter::{EdgeFilter, FilterBuilder, Verdict};

/// xorshift64*: reproducible keys without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn jti(&mut self) -> String {
        format!("{:016x}-{:016x}-0000", self.next(), self.next())
    }
}

fn main() {
    for n in [1_000_000usize, 10_000_000] {
        let mut rng = Rng(0x1234_5678_9abc_def1 ^ n as u64);
        let targets: Vec<Target> = (0..n)
            .map(|_| Target::Token {
                iss: Some("https://issuer.example".into()),
                jti: rng.jti(),
            })
            .collect();
        let started = Instant::now();
        let mut b = FilterBuilder::new();
        b.reserve(n);
        for t in &targets {
            b.add(
                veto_core::RecordId {
                    origin: veto_core::NodeId::new(1),
                    seq: 1,
                },
                t,
                u64::MAX,
                0,
            );
        }
        let hashed = started.elapsed();
        let filter = b.build("cursor-0").expect("build");
        let built = started.elapsed();
        let bytes = filter.encode();
        let encoded = started.elapsed();
        let decoded = EdgeFilter::decode(&bytes).expect("decode");
        drop(targets);
        // Raw false positives: random 64-bit keys, one probe each.
        let probes = 10_000_000u64;
        let raw = (0..probes)
            .filter(|_| decoded.contains_raw(rng.next()))
            .count();
        // Per check: a token of the same issuer with a random jti (two
        // probes: its issuer's form and the any-issuer form).
        let checks = 10_000_000u64;
        let mut per_check = 0u64;
        for _ in 0..checks {
            let jti = rng.jti();
            let c = Check {
                iss: Some("https://issuer.example"),
                jti: Some(&jti),
                ..Check::default()
            };
            if decoded.check(&c) == Verdict::Maybe {
                per_check += 1;
            }
        }
        println!(
            "n={n} bytes={} bytes_per_rev={:.3} hash_ms={} build_ms={} encode_ms={} \
             raw_fp={raw}/{probes} ({:.5}%) check_fp={per_check}/{checks} ({:.5}%)",
            bytes.len(),
            bytes.len() as f64 / n as f64,
            hashed.as_millis(),
            built.as_millis(),
            (encoded - built).as_millis(),
            raw as f64 * 100.0 / probes as f64,
            per_check as f64 * 100.0 / checks as f64,
        );
    }
}
