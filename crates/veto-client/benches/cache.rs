//! Lookup throughput of [`LocalCache::check`] with a million records loaded:
//! 990,000 token revocations and 10,000 subject cutoffs, spread over four
//! issuers. The target is at least ten million checks per second on one core.
//!
//! Each check is a miss carrying iss, sub, jti and iat, the common case at a
//! gateway: the token probe and the subject probe both run. `warm` cycles
//! through 1,024 checks, so the table lines they touch stay in cache;
//! `spread` cycles through 262,144 checks spread over the whole table, so most
//! probes miss the CPU caches as under real traffic. Each iteration answers a
//! batch of 1,024 checks; throughput is in checks per second, and criterion
//! writes the median to `target/criterion/*/new/estimates.json`. `bare_index`
//! runs the same checks on a bare [`LookupIndex`] without the cache's lock and
//! stale flag, to show what they cost.
//!
//! Run with `cargo bench -p veto-client --bench cache`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use veto_client::{Check, Decision, LocalCache, Record, RecordId, Target};
use veto_core::{Hlc, LookupIndex, NodeId};

const RECORDS: u64 = 1_000_000;
const SUBJECTS: u64 = 10_000;
const BATCH: usize = 1_024;
const IAT: u64 = 1_750_000_000;

const ISSUERS: [&str; 4] = [
    "https://login.example.com",
    "https://accounts.example.org/realms/main",
    "https://idp.example.net",
    "https://sts.example.io/tenant-42",
];

/// splitmix64: a fixed, seedable stream of ids without a dependency.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn uuid(n: u64) -> String {
    let (a, b) = (mix(n), mix(n ^ 0xdead_beef));
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn records() -> Vec<Record> {
    let origin = NodeId::new(0xabc);
    (0..RECORDS)
        .map(|i| {
            let iss = Some(ISSUERS[(i % 4) as usize].to_owned());
            let target = if i < SUBJECTS {
                Target::Subject {
                    iss,
                    sub: format!("user-{i}"),
                    before: IAT,
                }
            } else {
                Target::Token { iss, jti: uuid(i) }
            };
            Record {
                id: RecordId { origin, seq: i + 1 },
                hlc: Hlc(IAT << 32),
                target,
                expires_at: IAT + 86_400,
                reason: String::new(),
                actor: "admin".into(),
            }
        })
        .collect()
}

/// Owned claims of a token no record revokes.
struct Claims {
    iss: &'static str,
    sub: String,
    jti: String,
}

fn misses(n: usize) -> Vec<Claims> {
    (0..n as u64)
        .map(|i| Claims {
            iss: ISSUERS[(i % 4) as usize],
            sub: format!("user-{}", SUBJECTS + mix(i) % 10_000_000),
            jti: uuid(RECORDS * 7 + i),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let records = records();
    let cache = LocalCache::from_records(&records);
    assert_eq!(cache.len(), RECORDS as usize);
    // The same records in a bare index, to show what the cache adds.
    let mut index = LookupIndex::new();
    for r in &records {
        index.insert_record(r).unwrap();
    }
    drop(records);
    let mut group = c.benchmark_group("local_cache_miss_iss_sub_jti_iat");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, n) in [("warm", 1_024), ("spread", 1 << 18)] {
        let claims = misses(n);
        let checks: Vec<Check<'_>> = claims
            .iter()
            .map(|c| Check {
                iss: Some(c.iss),
                sub: Some(&c.sub),
                jti: Some(&c.jti),
                iat: Some(IAT + 60),
                ..Check::default()
            })
            .collect();
        for check in &checks {
            assert_eq!(cache.check(check), Decision::NotRevoked);
        }
        let mut at = 0;
        group.bench_function(BenchmarkId::new("cache", name), |b| {
            b.iter(|| {
                let batch = &checks[at..at + BATCH];
                at = (at + BATCH) % checks.len();
                let mut allowed = 0u32;
                for check in batch {
                    allowed += u32::from(cache.check(black_box(check)).is_allowed());
                }
                black_box(allowed)
            })
        });
        let mut at = 0;
        group.bench_function(BenchmarkId::new("bare_index", name), |b| {
            b.iter(|| {
                let batch = &checks[at..at + BATCH];
                at = (at + BATCH) % checks.len();
                let mut revoked = 0u32;
                for check in batch {
                    revoked += u32::from(index.check(black_box(check)).is_some());
                }
                black_box(revoked)
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
