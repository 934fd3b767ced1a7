//! Named scenarios for the durability faults of docs/durability.md: restored
//! backups, cloned data directories, cut logs, lost data, clocks hours and
//! days off, disks that fail for a while.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::faults::{two, Plan};
use crate::params::Params;
use crate::rng::SimRng;

/// Two nodes restored from backups. One is backed up early and restored
/// mid-run while connected: what it made since comes back from its peers.
/// The other is backed up, cut off, and restored while still cut off: what it
/// made alone is gone for good, as docs/durability.md says, unreported.
pub(super) fn restore_from_backup(p: &mut Params, rng: &mut SimRng) {
    let (d, n) = (p.duration_ms, p.nodes());
    let (a, b) = two(rng, n);
    let mut plan = Plan::default();
    plan.backup_restore(d * 15 / 100, d * 35 / 100, a);
    plan.backup_restore(d * 3 / 10, d * 4 / 10, b);
    plan.isolate(d * 55 / 100, d / 5, b, n);
    p.faults = plan.finish();
}

/// The last node starts at 40% from a copy of node `from`'s data directory,
/// in `from`'s region; `from` crashes and restarts later.
pub(super) fn cloned_node(p: &mut Params, from: usize) {
    let (d, n) = (p.duration_ms, p.nodes());
    let clone = n - 1;
    p.late_joiners = vec![clone];
    let mut plan = Plan::default();
    plan.clone_start(d * 2 / 5, clone, from);
    plan.crash(d * 3 / 5, d / 10, from);
    p.faults = plan.finish();
}

/// Cut logs. One node loses the tail of its log mid-run, and again later
/// while it is down; another is cut off for a while and then loses the tail
/// of its log, so that some of what it lost never left it (lost for good,
/// and reported).
pub(super) fn corrupt_tail(p: &mut Params, rng: &mut SimRng) {
    let (d, n) = (p.duration_ms, p.nodes());
    let (a, b) = two(rng, n);
    let mut plan = Plan::default();
    plan.truncate(d * 3 / 10, a, rng.gen_range(5..=40));
    plan.isolate(d / 2, d / 5, b, n);
    plan.truncate(d * 65 / 100, b, rng.gen_range(5..=40));
    plan.crash(d * 8 / 10, d / 10, a);
    plan.truncate(d * 85 / 100, a, rng.gen_range(1..=5));
    p.faults = plan.finish();
}

/// Two nodes lose the data of tens of records each but keep their ids
/// covered (the same frontier, a different digest): peers must send them
/// back through the holdings repair.
pub(super) fn lost_data(p: &mut Params, rng: &mut SimRng) {
    let (d, n) = (p.duration_ms, p.nodes());
    let (a, b) = two(rng, n);
    let mut plan = Plan::default();
    plan.lose_data(d * 3 / 10, a, rng.gen_range(10..=50));
    plan.lose_data(d * 6 / 10, b, rng.gen_range(10..=50));
    p.faults = plan.finish();
}

/// Clocks far beyond the tolerated offset, each put right later: one node a
/// day or more ahead, one hours behind, one hours ahead; never more than two
/// of the five wrong at once.
pub(super) fn clock_days(p: &mut Params, rng: &mut SimRng) {
    let (d, n) = (p.duration_ms, p.nodes());
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    const HOUR: i64 = 3_600_000;
    let mut plan = Plan::default();
    let days = rng.gen_range(1..=3) * 24 * HOUR + rng.gen_range(0..HOUR);
    plan.excursion(d * 15 / 100, d * 2 / 5, order[0], days);
    plan.excursion(
        d * 3 / 10,
        d * 2 / 5,
        order[1],
        -rng.gen_range(1..=12) * HOUR,
    );
    plan.excursion(d * 6 / 10, d / 4, order[2], rng.gen_range(1..=12) * HOUR);
    p.faults = plan.finish();
}

/// Disks that fail for a while: one comes back mid-run, one stays down until
/// the heal, and one node crashes and restarts while its disk is down.
pub(super) fn disk_failure(p: &mut Params, rng: &mut SimRng) {
    let (d, n) = (p.duration_ms, p.nodes());
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut plan = Plan::default();
    plan.disk_down(d / 5, d * 3 / 10, order[0]);
    plan.disk_down(d / 2, d, order[1]);
    plan.disk_down(d * 3 / 10, d * 3 / 10, order[2]);
    plan.crash(d * 4 / 10, d / 10, order[2]);
    p.faults = plan.finish();
}
