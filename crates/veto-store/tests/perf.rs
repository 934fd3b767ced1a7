//! Throughput of the store at test scale. Ignored by default: run with
//! `cargo test --release -p veto-store --test perf -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use veto_store::{OpenOptions, Store};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Appends in batches of 10,000 (durable, flushed), then reopens and iterates.
#[test]
#[ignore]
fn ingest_and_rebuild() {
    let total = env_usize("VETO_PERF_RECORDS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
    let batch = 10_000;
    let started = Instant::now();
    let mut seq = 0u64;
    while (seq as usize) < total {
        let recs: Vec<_> = (0..batch)
            .map(|i| {
                let s = seq + i as u64 + 1;
                common::token(7, s, 1_700_000_000 + s / 100, 1_800_000_000 + s % 86_400)
            })
            .collect();
        seq += batch as u64;
        assert_eq!(store.append(&recs).unwrap().len(), batch);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "append: {total} records in {secs:.2}s = {:.0} records/s (rss {:.0} MiB)",
        total as f64 / secs,
        rss_mib()
    );
    drop(store);

    let started = Instant::now();
    let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
    println!("reopen: {:.2}s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut n = 0u64;
    store.for_each_record(|_| n += 1).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(n, total as u64);
    println!(
        "for_each_record: {n} in {secs:.2}s = {:.0} records/s (rss {:.0} MiB)",
        n as f64 / secs,
        rss_mib()
    );
    let started = Instant::now();
    let mut n = 0u64;
    store.for_each_target(|_, _| n += 1).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(n, total as u64);
    println!(
        "for_each_target: {n} in {secs:.2}s = {:.0} records/s (rss {:.0} MiB)",
        n as f64 / secs,
        rss_mib()
    );
}
