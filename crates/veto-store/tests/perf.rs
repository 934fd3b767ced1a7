//! Throughput of the store at test scale. Ignored by default: run with
//! `cargo test --release -p veto-store --test perf -- --ignored --nocapture`
//! (`VETO_PERF_RECORDS=10000000` for the full-size restart figure).

mod common;

use std::time::Instant;

use veto_core::AuditQuery;
use veto_store::{OpenOptions, Store};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn dir_mib(dir: &std::path::Path) -> f64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total as f64 / (1024.0 * 1024.0)
}

fn timed<T>(what: &str, n: u64, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what}: {n} in {secs:.3}s = {:.0}/s (rss {:.0} MiB)",
        n as f64 / secs,
        rss_mib()
    );
    out
}

/// Appends in durable batches of 10,000 records from three origins, then
/// measures reads, a restart scan and single-record appends.
#[test]
#[ignore]
fn ingest_and_rebuild() {
    let total = env_u64("VETO_PERF_RECORDS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
    let batch = 10_000u64;
    let per_origin = total / 3;
    timed(
        "append (batches of 10,000, flushed)",
        per_origin * 3,
        || {
            let mut next = 0;
            while next < per_origin {
                for origin in 1..=3u64 {
                    let recs: Vec<_> = (next + 1..=(next + batch).min(per_origin))
                        .map(|s| {
                            // Revoked over time; expiring up to an hour later.
                            let at = 1_700_000_000 + s / 100;
                            common::token(origin, s, at, at + (s * 7_919) % 3_600)
                        })
                        .collect();
                    store.append(&recs).unwrap();
                }
                next += batch;
            }
        },
    );
    println!("data dir: {:.0} MiB", dir_mib(dir.path()));
    drop(store);

    let store = timed("reopen", 1, || {
        Store::open(dir.path(), OpenOptions::default()).unwrap()
    });
    let live = store.live_count();
    timed("for_each_target (restart path)", live, || {
        let mut n = 0u64;
        store.for_each_target(|_, _| n += 1).unwrap();
        assert_eq!(n, live);
    });
    timed("for_each_record", live, || {
        let mut n = 0u64;
        store.for_each_record(|_| n += 1).unwrap();
        assert_eq!(n, live);
    });
    timed("get (random ids)", 200_000, || {
        for i in 0..200_000u64 {
            let seq = 1 + (i * 2_654_435_761) % per_origin;
            assert!(store.get(common::id(1 + i % 3, seq)).unwrap().is_some());
        }
    });
    timed("audit newest page of 100", 100, || {
        for _ in 0..100 {
            let page = store
                .audit(&AuditQuery {
                    limit: 100,
                    ..AuditQuery::default()
                })
                .unwrap();
            assert_eq!(page.len(), 100);
        }
    });
    timed(
        "audit with a filter nothing matches (full scan)",
        live,
        || {
            let page = store
                .audit(&AuditQuery {
                    key: Some("no-such-key".into()),
                    limit: 100,
                    ..AuditQuery::default()
                })
                .unwrap();
            assert!(page.is_empty());
        },
    );
    let now = 1_700_000_000 + per_origin / 200;
    let expired = timed("expired (max 10,000)", 10, || {
        let mut last = Vec::new();
        for _ in 0..10 {
            last = store.expired(now, 0, 10_000).unwrap();
        }
        last
    });
    let ids: Vec<_> = expired.iter().map(|r| r.id).collect();
    timed("prune 10,000", ids.len() as u64, || {
        store.prune(&ids).unwrap();
    });
    let mut seq = per_origin;
    timed("single-record appends, one thread", 200, || {
        for _ in 0..200 {
            seq += 1;
            store
                .append(&[common::token(1, seq, 1_700_100_000, 1_700_200_000)])
                .unwrap();
        }
    });
    timed("single-record appends, 8 threads", 800, || {
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let store = store.clone();
                s.spawn(move || {
                    for i in 0..100 {
                        store
                            .append(&[common::token(10 + t, i + 1, 1_700_100_000, 1_700_200_000)])
                            .unwrap();
                    }
                });
            }
        });
    });
}
