//! The `random` scenario: swarm testing, every parameter of the world drawn
//! from the seed, and a random fault plan over every kind of fault.

use rand::seq::SliceRandom;
use rand::Rng;

use super::{base, shape, Overrides, Scenario, Size};
use crate::faults::{random_plan, two, Plan};
use crate::params::{BulkImport, Chaos, Params};
use crate::regions::REGIONS;
use crate::rng::{stream, SimRng, Stream};

/// Clock steps of a far-off clock that is put right later, ms: an hour, six
/// hours, a day, three days.
pub(super) const FAR_STEPS_MS: [i64; 4] = [3_600_000, 6 * 3_600_000, 86_400_000, 3 * 86_400_000];

/// Swarm testing: every parameter drawn from the seed.
pub(super) fn random(seed: u64, size: Size, ov: &Overrides, rng: &mut SimRng) -> Params {
    let quick = size == Size::Quick;
    let mut params_rng = stream(seed, Stream::Params);
    let r = &mut params_rng;
    let mut regions: Vec<usize> = (0..REGIONS.len()).collect();
    regions.shuffle(r);
    regions.truncate(r.gen_range(1..=REGIONS.len()));
    let cap = if quick { 10 } else { 24 };
    let mut node_regions = Vec::new();
    for region in &regions {
        let k = if r.gen_bool(0.2) {
            r.gen_range(1..=6)
        } else {
            r.gen_range(1..=3)
        };
        node_regions.extend(std::iter::repeat_n(*region, k));
    }
    if node_regions.len() < 2 {
        node_regions.push(regions[0]);
    }
    node_regions.truncate(cap);
    if let Some(n) = ov.nodes {
        node_regions = shape(&regions, Some(n));
    }
    let mut p = base(seed, Scenario::Random, node_regions, size, ov, r);
    let n = p.nodes();
    let drawn = if quick {
        r.gen_range(3_000..=8_000)
    } else {
        r.gen_range(10_000..=60_000)
    };
    p.duration_ms = ov.duration_ms.unwrap_or(drawn);
    p.warmup_ms = r.gen_range(0..=2_000);
    p.gc_interval_ms = r.gen_range(200..=3_000);
    let w = &mut p.workload;
    w.revocations = if quick {
        r.gen_range(20..=200)
    } else {
        r.gen_range(50..=5_000)
    };
    w.checks = (w.revocations as f64 * r.gen_range(0.5..3.0)) as u64;
    w.batch_prob = r.gen_range(0.0..0.1);
    w.max_batch = r.gen_range(2..=200);
    w.short_lived = r.gen_range(0.0..=1.0);
    w.short_life_s = (r.gen_range(1..=5), r.gen_range(5..=30));
    if r.gen_bool(0.2) {
        w.bulk_import = Some(BulkImport {
            at_ms: r.gen_range(0..p.duration_ms / 2),
            node: r.gen_range(0..n),
            count: if quick {
                r.gen_range(50..=1_000)
            } else {
                r.gen_range(100..=10_000)
            },
        });
    }
    let e = &mut p.engine;
    e.anti_entropy_ms = r.gen_range(300..=5_000);
    e.max_batch_records = *[8, 32, 128, 1_024].choose(r).unwrap_or(&1_024);
    e.max_batch_bytes = *[4_096, 65_536, 262_144].choose(r).unwrap_or(&262_144);
    e.window = r.gen_range(1..=8);
    e.ack_timeout_ms = r.gen_range(2_000..=30_000);
    e.handshake_timeout_ms = r.gen_range(3_000..=10_000);
    e.push_grace_ms = r.gen_range(200..=2_000);
    e.retry_delay_ms = r.gen_range(200..=2_000);
    e.gc_grace_s = r.gen_range(1..=30);
    e.max_clock_offset_ms = *[100, 500, 2_000].choose(r).unwrap_or(&500);
    let t = &mut p.transport;
    t.idle_timeout_ms = r.gen_range(3_000..=15_000);
    t.keep_alive_ms = r.gen_range(500..=t.idle_timeout_ms / 2);
    t.dial_timeout_ms = r.gen_range(1_000..=5_000);
    t.backoff_min_ms = r.gen_range(50..=500);
    t.backoff_max_ms = r.gen_range(1_000..=10_000);
    p.net.jitter = r.gen_range(0.0..0.5);
    p.net.loss = if r.gen_bool(0.5) {
        0.0
    } else {
        r.gen_range(0.0..0.2)
    };
    p.net.bandwidth_mbps = *[10.0, 100.0, 1_000.0].choose(r).unwrap_or(&1_000.0);
    p.disk.min_us = r.gen_range(50..=500);
    p.disk.max_us = p.disk.min_us + r.gen_range(0..=20_000);
    p.disk.fail_prob = if r.gen_bool(0.7) {
        0.0
    } else {
        r.gen_range(0.0..0.05)
    };
    p.disk.read_fail_prob = if r.gen_bool(0.7) {
        0.0
    } else {
        r.gen_range(0.0..0.1)
    };
    if r.gen_bool(0.3) {
        p.base_chaos = Chaos {
            loss: 0.0,
            drop: r.gen_range(0.0..0.05),
            duplicate: r.gen_range(0.0..0.05),
            reorder: r.gen_range(0.0..0.05),
        };
    }
    if r.gen_bool(0.4) {
        // Most clocks are kept within the tolerated offset (NTP), a minority
        // are far off: seconds to days, ahead or behind. Against a majority of
        // wrong clocks no rule can tell which time is right.
        let tolerated = p.engine.max_clock_offset_ms as i64;
        p.skew_ms = (0..n)
            .map(|_| r.gen_range(-tolerated / 3..=tolerated / 3))
            .collect();
        let bad = r.gen_range(1..=(n.saturating_sub(1) / 2).max(1));
        for _ in 0..bad.min(n) {
            let k = r.gen_range(0..n);
            let far = *[5_000i64, 60_000, 3_600_000, 3 * 86_400_000]
                .choose(r)
                .unwrap_or(&5_000);
            let sign = if r.gen_bool(0.5) { 1 } else { -1 };
            p.skew_ms[k] = sign * r.gen_range(far / 2..=far);
        }
    }
    let d = p.duration_ms;
    let count = rng.gen_range(0..=(d / 3_000) as usize + 1);
    let mut faults = random_plan(rng, n, p.warmup_ms, d, count);
    let mut plan = Plan::default();
    if n >= 3 && rng.gen_bool(0.2) {
        let late = rng.gen_range(0..n);
        p.late_joiners = vec![late];
        let at = rng.gen_range(d / 10..=d * 7 / 10);
        if rng.gen_bool(0.5) {
            // It starts from a copy of another node's data directory.
            let (_, from) = two(rng, n);
            let from = if from == late { (late + 1) % n } else { from };
            plan.clone_start(at, late, from);
        } else {
            plan.start(at, late);
        }
    }
    // A clock far off for a while (hours or days, ahead or behind) and put
    // right later: on a node whose clock is right, and only while the wrong
    // clocks stay a minority (against a majority of wrong clocks no rule can
    // tell which time is right).
    let tolerated = p.engine.max_clock_offset_ms as i64;
    let good: Vec<usize> = (0..n)
        .filter(|&k| p.skew_ms.get(k).map_or(0, |s| s.abs()) <= tolerated)
        .collect();
    let bad = n - good.len();
    if bad < n.saturating_sub(1) / 2
        && !good.is_empty()
        && d > p.warmup_ms + 100
        && rng.gen_bool(0.25)
    {
        let k = good[rng.gen_range(0..good.len())];
        let at = rng.gen_range(p.warmup_ms..d);
        let len = rng.gen_range(100..=d);
        let step = *FAR_STEPS_MS.choose(rng).unwrap_or(&3_600_000);
        let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
        plan.excursion(at, len, k, sign * rng.gen_range(step / 2..=step));
    }
    faults.extend(plan.finish());
    faults.sort_by_key(|s| s.at_ms);
    p.faults = faults;
    p
}
