//! Lookup throughput of [`LookupIndex::check`] with a million token revocations
//! loaded. The target is at least ten million checks per second on one core.
//!
//! Every case runs twice: `warm` cycles through 1,024 checks, so the table lines
//! they touch stay in cache; `spread` cycles through 262,144 checks whose keys
//! are spread over the whole table, so most probes miss the CPU caches as they
//! would under real traffic. Each iteration answers a batch of checks, and the
//! throughput is reported in checks per second.
//!
//! The `claims` group measures decoding a JWT for a lookup, borrowed
//! ([`jwt::decode_in`], the path of `?token=` and `/v1/auth`) and owned
//! ([`jwt::decode`]), on 1,024 realistic access tokens per iteration.
//!
//! Run with `cargo bench -p veto-core --bench index`. The `spread` cases measure
//! memory latency, so on a machine shared with other work the figures swing by a
//! factor of two or more; for numbers worth comparing, run the built benchmark
//! binary with real-time priority on an otherwise idle core, e.g.
//! `chrt -f 10 target/release/deps/index-<hash> --bench`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veto_core::{jwt, Check, LookupIndex, NodeId, RecordId, Target};

const TOKENS: usize = 1_000_000;
const BATCH: usize = 1_024;
const WARM: usize = 1_024;
const SPREAD: usize = 1 << 18;

const ISSUERS: [&str; 4] = [
    "https://login.example.com",
    "https://accounts.example.org/realms/main",
    "https://idp.example.net",
    "https://sts.example.io/tenant-42",
];
const IAT: u64 = 1_750_000_000;

fn uuid(rng: &mut StdRng) -> String {
    let a: u128 = rng.gen();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Owned claims; a [`Check`] borrows from them.
struct Claims {
    iss: String,
    sub: String,
    jti: String,
    sid: String,
    client_id: String,
    kid: String,
    token_sha256: [u8; 32],
}

impl Claims {
    fn random(rng: &mut StdRng, jti: String) -> Claims {
        Claims {
            iss: ISSUERS[rng.gen_range(0..ISSUERS.len())].to_owned(),
            sub: format!("user-{}", rng.gen_range(0..10_000_000u32)),
            jti,
            sid: uuid(rng),
            client_id: format!("client-{}", rng.gen_range(0..100_000u32)),
            kid: format!("key-{}", rng.gen_range(0..1_000u32)),
            token_sha256: rng.gen(),
        }
    }

    /// What a gateway usually has: issuer, subject, jti and iat.
    fn common(&self) -> Check<'_> {
        Check {
            iss: Some(&self.iss),
            sub: Some(&self.sub),
            jti: Some(&self.jti),
            iat: Some(IAT),
            ..Check::default()
        }
    }

    /// Every field, so that every scope is probed.
    fn full(&self) -> Check<'_> {
        Check {
            iss: Some(&self.iss),
            sub: Some(&self.sub),
            jti: Some(&self.jti),
            sid: Some(&self.sid),
            client_id: Some(&self.client_id),
            kid: Some(&self.kid),
            iat: Some(IAT),
            token_sha256: Some(self.token_sha256),
        }
    }
}

struct Fixture {
    index: LookupIndex,
    /// The iss and jti of every revoked token, in load order.
    revoked: Vec<(usize, String)>,
}

/// A million revoked tokens, plus a realistic sprinkle of every other scope so
/// that a full check has something to probe in each map.
fn fixture() -> Fixture {
    let mut rng = StdRng::seed_from_u64(7);
    let mut index = LookupIndex::new();
    index.reserve_tokens(TOKENS);
    let origins = [NodeId::new(0xa1), NodeId::new(0xb2), NodeId::new(0xc3)];
    let mut seq = [0u64; 3];
    let mut next_id = |rng: &mut StdRng| {
        let o = rng.gen_range(0..origins.len());
        seq[o] += 1;
        RecordId {
            origin: origins[o],
            seq: seq[o],
        }
    };
    let mut revoked = Vec::with_capacity(TOKENS);
    for _ in 0..TOKENS {
        let iss = rng.gen_range(0..ISSUERS.len());
        let jti = uuid(&mut rng);
        let target = Target::Token {
            iss: Some(ISSUERS[iss].to_owned()),
            jti: jti.clone(),
        };
        index.insert(next_id(&mut rng), &target).unwrap();
        revoked.push((iss, jti));
    }
    let iss = || Some(ISSUERS[0].to_owned());
    for i in 0..1_000 {
        let others = [
            Target::Session {
                iss: iss(),
                sid: format!("revoked-session-{i}"),
            },
            Target::Subject {
                iss: iss(),
                sub: format!("revoked-user-{i}"),
                before: IAT + 3_600,
            },
            Target::opaque_token(&format!("revoked-opaque-{i}")),
        ];
        for t in others {
            index.insert(next_id(&mut rng), &t).unwrap();
        }
    }
    for i in 0..100 {
        let t = Target::Client {
            iss: None,
            client_id: format!("revoked-client-{i}"),
            before: IAT + 3_600,
        };
        index.insert(next_id(&mut rng), &t).unwrap();
    }
    for i in 0..10 {
        let key = Target::Key {
            iss: None,
            kid: format!("revoked-key-{i}"),
        };
        index.insert(next_id(&mut rng), &key).unwrap();
    }
    // Issuer cutoffs that do not catch the benchmark's tokens, so the issuer map
    // is probed but a full check still misses.
    for iss in ISSUERS {
        let t = Target::Issuer {
            iss: iss.to_owned(),
            before: IAT - 86_400,
        };
        index.insert(next_id(&mut rng), &t).unwrap();
    }
    Fixture { index, revoked }
}

/// `n` claims that miss: fresh jtis nobody revoked.
fn misses(n: usize, rng: &mut StdRng) -> Vec<Claims> {
    (0..n)
        .map(|_| {
            let jti = uuid(rng);
            Claims::random(rng, jti)
        })
        .collect()
}

/// `n` claims that hit: revoked jtis, picked at random over the whole table.
fn hits(n: usize, fx: &Fixture, rng: &mut StdRng) -> Vec<Claims> {
    (0..n)
        .map(|_| {
            let (iss, jti) = &fx.revoked[rng.gen_range(0..fx.revoked.len())];
            let mut c = Claims::random(rng, jti.clone());
            c.iss = ISSUERS[*iss].to_owned();
            c
        })
        .collect()
}

/// One kind of check to measure.
struct Case {
    name: &'static str,
    /// Which fields the check carries.
    make: fn(&Claims) -> Check<'_>,
    /// Whether its jti is revoked.
    hit: bool,
}

fn bench(c: &mut Criterion) {
    let fx = fixture();
    let mut rng = StdRng::seed_from_u64(11);
    let mut group = c.benchmark_group("check");
    group.throughput(Throughput::Elements(BATCH as u64));

    let cases = [
        Case {
            name: "miss_common",
            make: Claims::common,
            hit: false,
        },
        Case {
            name: "hit",
            make: Claims::common,
            hit: true,
        },
        Case {
            name: "full_miss",
            make: Claims::full,
            hit: false,
        },
    ];
    for Case { name, make, hit } in cases {
        for (spread, n) in [("warm", WARM), ("spread", SPREAD)] {
            let claims = if hit {
                hits(n, &fx, &mut rng)
            } else {
                misses(n, &mut rng)
            };
            let checks: Vec<Check<'_>> = claims.iter().map(make).collect();
            assert!(checks.iter().all(|c| fx.index.check(c).is_some() == hit));
            let mut cursor = 0;
            group.bench_function(BenchmarkId::new(name, spread), |b| {
                b.iter(|| {
                    let batch = &checks[cursor..cursor + BATCH];
                    cursor = (cursor + BATCH) % checks.len();
                    let mut revoked = 0usize;
                    for c in batch {
                        revoked += usize::from(fx.index.check(black_box(c)).is_some());
                    }
                    black_box(revoked)
                })
            });
        }
    }
    group.finish();
}

/// `n` realistic access tokens: an RS256 header with `kid`, and claims with
/// the lookup keys plus the audience, scopes and profile claims a lookup
/// skips.
fn tokens(n: usize, rng: &mut StdRng) -> Vec<String> {
    (0..n)
        .map(|_| {
            let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": format!("key-{}", rng.gen_range(0..1_000u32))});
            let claims = serde_json::json!({
                "iss": ISSUERS[rng.gen_range(0..ISSUERS.len())],
                "sub": format!("user-{}", rng.gen_range(0..10_000_000u32)),
                "aud": ["api://orders", "api://billing"],
                "exp": IAT + 3_600,
                "nbf": IAT,
                "iat": IAT,
                "jti": uuid(rng),
                "sid": uuid(rng),
                "azp": format!("client-{}", rng.gen_range(0..100_000u32)),
                "scope": "openid profile email orders:read orders:write",
                "email": "someone@example.com",
                "email_verified": true,
                "roles": ["reader", "writer"],
                "auth_time": IAT - 60,
            });
            jwt::encode_unsigned(&header, &claims)
        })
        .collect()
}

/// Decoding a JWT's header and claims for a lookup: borrowed (the hot path
/// of `?token=` and `/v1/auth`) and owned.
fn bench_claims(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(13);
    let tokens = tokens(BATCH, &mut rng);
    let mut group = c.benchmark_group("claims");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("borrowed", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for t in &tokens {
                // A fresh buffer per token, as a request gets.
                let mut buf = Vec::new();
                n += jwt::decode_in(black_box(t), &mut buf)
                    .map(|c| c.as_check().iat.unwrap_or(0))
                    .unwrap_or(0);
            }
            black_box(n)
        })
    });
    group.bench_function("owned", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for t in &tokens {
                n += jwt::decode(black_box(t))
                    .map(|c| c.iat.unwrap_or(0))
                    .unwrap_or(0);
            }
            black_box(n)
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_claims(&mut c);
    bench(&mut c);
    c.final_summary();
}
