//! Every random choice of a run comes from its one seed, through independent
//! streams: drawing one more workload event never shifts the network's dice.

use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator used everywhere: ChaCha8 is portable (the same numbers on
/// every platform and Rust version), unlike `StdRng`.
pub(crate) type SimRng = ChaCha8Rng;

/// Which stream of a seed a generator draws from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// The world's parameters (swarm testing).
    Params,
    /// The fault plan.
    Faults,
    /// Latencies, losses, duplicates, dial jitter.
    Net,
    /// Revocations and checks.
    Workload,
    /// Disk latencies and failures.
    Disk,
    /// Node identities.
    Identity,
    /// Node `i`'s engine (anti-entropy jitter).
    Engine(usize),
}

impl Stream {
    fn number(self) -> u64 {
        match self {
            Stream::Params => 1,
            Stream::Faults => 2,
            Stream::Net => 3,
            Stream::Workload => 4,
            Stream::Disk => 5,
            Stream::Identity => 6,
            Stream::Engine(i) => 1_000 + i as u64,
        }
    }
}

/// The generator for one stream of `seed`.
pub(crate) fn stream(seed: u64, which: Stream) -> SimRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(which.number());
    rng
}

/// When the first of `left` points drawn uniformly over `[now, end)` falls.
/// Drawing them one after the other this way gives exactly `left` arrivals
/// of a Poisson process conditioned on its count.
pub(crate) fn next_arrival(rng: &mut SimRng, now: u64, end: u64, left: u64) -> u64 {
    if left == 0 || now >= end {
        return end;
    }
    let u: f64 = rng.gen_range(0.0..1.0);
    let share = 1.0 - (1.0 - u).powf(1.0 / left as f64);
    now + ((end - now) as f64 * share) as u64
}

/// How many times in a row an event of probability `p` happens (a packet lost
/// again and again), capped so that a pathological `p` cannot loop.
pub(crate) fn repeats(rng: &mut SimRng, p: f64) -> u32 {
    let mut n = 0;
    while p > 0.0 && n < 16 && rng.gen_bool(p.min(0.95)) {
        n += 1;
    }
    n
}

/// A cheap, stable 64-bit mix (splitmix64's finaliser), for hashing without a
/// generator.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
