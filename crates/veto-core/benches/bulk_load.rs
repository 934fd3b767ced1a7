//! Building the lookup index from an index checkpoint's keys
//! ([`BulkLoad`]): what a restart spends most of its time on. One iteration
//! pushes N token keys (uniform 64-bit digests, as the checkpoint holds
//! them) and finishes the index; throughput is in keys per second.
//!
//! Run with `cargo bench -p veto-core --bench bulk_load`. At 10M one
//! iteration takes about a second and holds about 600 MB.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veto_core::{BulkLoad, IndexKey, IndexMap, NodeId, RecordId};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulk_load");
    group.sample_size(10);
    for n in [1_000_000usize, 10_000_000] {
        let mut rng = StdRng::seed_from_u64(n as u64);
        let keys: Vec<u64> = (0..n).map(|_| rng.gen()).collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("tokens", n), &keys, |b, keys| {
            b.iter(|| {
                let mut load = BulkLoad::new(keys.len());
                for (seq, key) in (1..).zip(keys) {
                    let id = RecordId {
                        origin: NodeId::new(3),
                        seq,
                    };
                    let key = IndexKey {
                        map: IndexMap::Tokens,
                        key: *key,
                        iss: 0x1ce,
                        before: 0,
                    };
                    load.push(id, key).expect("one origin, small seqs");
                }
                black_box(load.finish().len())
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
