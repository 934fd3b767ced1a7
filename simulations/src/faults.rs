//! Building fault plans: partitions, chaos, crashes, clock jumps, flapping
//! links, storage faults, each as a start step and (where it has one) an end
//! step.

use rand::seq::SliceRandom;
use rand::Rng;

use crate::params::{Chaos, FaultAction, FaultStep, Links};
use crate::rng::SimRng;

/// A fault plan under construction.
#[derive(Default)]
pub(crate) struct Plan {
    steps: Vec<FaultStep>,
    next_id: u32,
}

impl Plan {
    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    fn at(&mut self, at_ms: u64, action: FaultAction) {
        self.steps.push(FaultStep { at_ms, action });
    }

    /// Blocks `links` from `at_ms` for `len_ms`.
    pub(crate) fn partition(&mut self, at_ms: u64, len_ms: u64, links: Links) {
        let id = self.id();
        self.at(at_ms, FaultAction::Partition { id, links });
        self.at(at_ms + len_ms, FaultAction::Heal { id });
    }

    /// Cuts `node` off from everyone else, both ways.
    pub(crate) fn isolate(&mut self, at_ms: u64, len_ms: u64, node: usize, n: usize) {
        let others = (0..n).filter(|&o| o != node).collect();
        self.partition(
            at_ms,
            len_ms,
            Links {
                from: vec![node],
                to: others,
                both_ways: true,
            },
        );
    }

    /// Splits the nodes into two groups that cannot reach each other.
    pub(crate) fn split(&mut self, at_ms: u64, len_ms: u64, side: Vec<usize>, n: usize) {
        let rest = (0..n).filter(|o| !side.contains(o)).collect();
        self.partition(
            at_ms,
            len_ms,
            Links {
                from: side,
                to: rest,
                both_ways: true,
            },
        );
    }

    /// Links misbehave from `at_ms` for `len_ms`.
    pub(crate) fn chaos(&mut self, at_ms: u64, len_ms: u64, links: Links, chaos: Chaos) {
        let id = self.id();
        self.at(at_ms, FaultAction::Chaos { id, links, chaos });
        self.at(at_ms + len_ms, FaultAction::Calm { id });
    }

    /// `node` crashes at `at_ms` and restarts `down_ms` later.
    pub(crate) fn crash(&mut self, at_ms: u64, down_ms: u64, node: usize) {
        self.at(at_ms, FaultAction::Crash { node });
        self.at(at_ms + down_ms, FaultAction::Restart { node });
    }

    /// `node`'s clock steps by `delta_ms`.
    pub(crate) fn jump(&mut self, at_ms: u64, node: usize, delta_ms: i64) {
        self.at(at_ms, FaultAction::ClockJump { node, delta_ms });
    }

    /// A node that has never run joins.
    pub(crate) fn start(&mut self, at_ms: u64, node: usize) {
        self.at(at_ms, FaultAction::Start { node });
    }

    /// `node`'s clock steps by `delta_ms` at `at_ms` and is put right by the
    /// opposite step `len_ms` later.
    pub(crate) fn excursion(&mut self, at_ms: u64, len_ms: u64, node: usize, delta_ms: i64) {
        self.jump(at_ms, node, delta_ms);
        self.jump(at_ms + len_ms, node, -delta_ms);
    }

    /// `node` is backed up at `at_ms` and restored from that backup `len_ms`
    /// later.
    pub(crate) fn backup_restore(&mut self, at_ms: u64, len_ms: u64, node: usize) {
        let id = self.id();
        self.at(at_ms, FaultAction::Snapshot { node, id });
        self.at(at_ms + len_ms, FaultAction::RestoreSnapshot { node, id });
    }

    /// A node that has never run starts with a copy of `from`'s data.
    pub(crate) fn clone_start(&mut self, at_ms: u64, node: usize, from: usize) {
        self.at(at_ms, FaultAction::StartClone { node, from });
    }

    /// `node`'s log loses its last `writes` writes.
    pub(crate) fn truncate(&mut self, at_ms: u64, node: usize, writes: usize) {
        self.at(at_ms, FaultAction::TruncateTail { node, writes });
    }

    /// `count` of `node`'s records lose their data.
    pub(crate) fn lose_data(&mut self, at_ms: u64, node: usize, count: usize) {
        self.at(at_ms, FaultAction::LoseData { node, count });
    }

    /// `node`'s disk fails from `at_ms` for `len_ms`.
    pub(crate) fn disk_down(&mut self, at_ms: u64, len_ms: u64, node: usize) {
        self.at(at_ms, FaultAction::DiskDown { node });
        self.at(at_ms + len_ms, FaultAction::DiskUp { node });
    }

    /// The link `a -> b` (and back when `both_ways`) goes down and up again
    /// and again, each state lasting `period_ms` (low, high), until `until_ms`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn flap(
        &mut self,
        rng: &mut SimRng,
        from_ms: u64,
        until_ms: u64,
        a: usize,
        b: usize,
        period_ms: (u64, u64),
        both_ways: bool,
    ) {
        let mut t = from_ms;
        while t < until_ms {
            let down = rng.gen_range(period_ms.0..=period_ms.1);
            let up = rng.gen_range(period_ms.0..=period_ms.1);
            let len = down.min(until_ms - t);
            self.partition(
                t,
                len,
                Links {
                    from: vec![a],
                    to: vec![b],
                    both_ways,
                },
            );
            t += down + up;
        }
    }

    /// The plan, in time order (steps at one instant keep their order).
    pub(crate) fn finish(mut self) -> Vec<FaultStep> {
        self.steps.sort_by_key(|s| s.at_ms);
        self.steps
    }
}

/// A random non-empty proper subset of `0..n` (for `n >= 2`).
pub(crate) fn random_side(rng: &mut SimRng, n: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(rng);
    let k = rng.gen_range(1..n.max(2));
    let mut side: Vec<usize> = all[..k.min(n)].to_vec();
    side.sort_unstable();
    side
}

/// Two distinct nodes.
pub(crate) fn two(rng: &mut SimRng, n: usize) -> (usize, usize) {
    let a = rng.gen_range(0..n);
    let mut b = rng.gen_range(0..n - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

/// A random plan of `count` faults of every kind within `[from, until)` ms.
pub(crate) fn random_plan(
    rng: &mut SimRng,
    n: usize,
    from_ms: u64,
    until_ms: u64,
    count: usize,
) -> Vec<FaultStep> {
    let mut plan = Plan::default();
    if n < 2 || until_ms <= from_ms + 100 {
        return plan.finish();
    }
    let span = until_ms - from_ms;
    for _ in 0..count {
        let at = from_ms + rng.gen_range(0..span);
        let len = rng.gen_range(100..=span.clamp(101, 25_000));
        match rng.gen_range(0..13) {
            0 => plan.split(at, len, random_side(rng, n), n),
            1 => plan.isolate(at, len, rng.gen_range(0..n), n),
            2 => {
                let links = Links {
                    from: random_side(rng, n),
                    to: random_side(rng, n),
                    both_ways: false,
                };
                plan.partition(at, len, links);
            }
            3 | 4 => plan.crash(at, rng.gen_range(50..=len.min(15_000)), rng.gen_range(0..n)),
            5 => {
                let delta = rng.gen_range(100..=30_000) as i64;
                let sign = if rng.gen_bool(0.5) { 1 } else { -1 };
                plan.jump(at, rng.gen_range(0..n), sign * delta);
            }
            6 => {
                let (a, b) = two(rng, n);
                let low = rng.gen_range(50..=2_000);
                let both = rng.gen_bool(0.5);
                plan.flap(
                    rng,
                    at,
                    (at + len).min(until_ms),
                    a,
                    b,
                    (low, low * 3),
                    both,
                );
            }
            9 => plan.backup_restore(at, len, rng.gen_range(0..n)),
            10 => plan.truncate(at, rng.gen_range(0..n), rng.gen_range(1..=40)),
            11 => plan.lose_data(at, rng.gen_range(0..n), rng.gen_range(1..=30)),
            12 => plan.disk_down(at, len, rng.gen_range(0..n)),
            _ => {
                let links = Links {
                    from: random_side(rng, n),
                    to: (0..n).collect(),
                    both_ways: rng.gen_bool(0.5),
                };
                let chaos = Chaos {
                    loss: rng.gen_range(0.0..0.3),
                    drop: if rng.gen_bool(0.5) {
                        rng.gen_range(0.0..0.1)
                    } else {
                        0.0
                    },
                    duplicate: if rng.gen_bool(0.5) {
                        rng.gen_range(0.0..0.1)
                    } else {
                        0.0
                    },
                    reorder: if rng.gen_bool(0.5) {
                        rng.gen_range(0.0..0.1)
                    } else {
                        0.0
                    },
                };
                plan.chaos(at, len, links, chaos);
            }
        }
    }
    plan.finish()
}
