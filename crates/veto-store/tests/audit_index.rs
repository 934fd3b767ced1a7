//! The audit trail through the lookup index gives, record for record and in
//! the same order, what the scan of the store gives, for every kind of
//! filter and their combinations.

mod common;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use veto_core::{AuditQuery, Hlc, LookupIndex, NodeId, Record, RecordId, ScopeKind, Target};
use veto_store::{IndexWithPeers, OpenOptions, Store};

const ISSUERS: [&str; 3] = [
    "https://a.example",
    "https://b.example",
    "https://c.example",
];

fn target(rng: &mut rand::rngs::StdRng, n: u64) -> Target {
    let iss = |rng: &mut rand::rngs::StdRng| {
        (rng.gen_range(0..4) > 0).then(|| ISSUERS[rng.gen_range(0..2)].to_owned())
    };
    match rng.gen_range(0..20) {
        0..=9 => Target::Token {
            iss: iss(rng),
            jti: format!("j{}", rng.gen_range(0..300)),
        },
        10 => Target::TokenHash {
            sha256: [rng.gen_range(0..4u8); 32],
        },
        11 | 12 => Target::Session {
            iss: iss(rng),
            sid: format!("s{}", rng.gen_range(0..20)),
        },
        13 => Target::Key {
            iss: iss(rng),
            kid: format!("k{}", rng.gen_range(0..5)),
        },
        14 | 15 => Target::Subject {
            iss: iss(rng),
            sub: format!("u{}", rng.gen_range(0..20)),
            before: 1_700_000_000 + n,
        },
        16 => Target::Client {
            iss: iss(rng),
            client_id: format!("c{}", rng.gen_range(0..5)),
            before: 1_700_000_000 + n,
        },
        17 => Target::Issuer {
            iss: ISSUERS[rng.gen_range(0..3)].to_owned(),
            before: 1_700_000_000 + n,
        },
        18 => Target::Peer {
            name: Some(format!("node-{}", rng.gen_range(0..3))),
            cert_sha256: None,
        },
        _ => Target::Token {
            iss: None,
            jti: format!("u{}", rng.gen_range(0..20)),
        },
    }
}

/// Three origins writing at once: each origin's stamps rise with its seqs,
/// and the origins' records interleave in time.
fn records(seed: u64, n: u64) -> Vec<Record> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut seqs = [0u64; 3];
    let mut clock = 1_700_000_000_000u64;
    (0..n)
        .map(|i| {
            let o = rng.gen_range(0..3);
            seqs[o] += 1;
            clock += rng.gen_range(0..3_000);
            Record {
                id: RecordId {
                    origin: NodeId::new(o as u64 + 1),
                    seq: seqs[o],
                },
                hlc: Hlc::from_unix(Duration::from_millis(clock)),
                target: target(&mut rng, i),
                expires_at: 1_800_000_000,
                reason: String::new(),
                actor: "ops".into(),
            }
        })
        .collect()
}

fn queries(rng: &mut rand::rngs::StdRng) -> AuditQuery {
    let keys = [
        "j1", "j7", "s3", "k2", "u4", "c1", "node-1", "missing", ISSUERS[0], ISSUERS[2],
    ];
    let sha = hex::encode([2u8; 32]);
    AuditQuery {
        scope: (rng.gen_range(0..3) == 0)
            .then(|| ScopeKind::ALL[rng.gen_range(0..ScopeKind::ALL.len())]),
        key: match rng.gen_range(0..4) {
            0 => Some(keys[rng.gen_range(0..keys.len())].to_owned()),
            1 => Some(sha.clone()),
            _ => None,
        },
        origin: (rng.gen_range(0..3) == 0).then(|| NodeId::new(rng.gen_range(1..5))),
        since: (rng.gen_range(0..4) == 0).then(|| 1_700_000_000 + rng.gen_range(0..2_000)),
        until: (rng.gen_range(0..4) == 0).then(|| 1_700_000_000 + rng.gen_range(0..4_000)),
        limit: [0, 1, 5, 100, 2_000][rng.gen_range(0..5)],
    }
}

#[test]
fn the_index_answers_as_the_scan_does() {
    for seed in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
        let all = records(seed, 3_000);
        for batch in all.chunks(500) {
            store.append(batch).unwrap();
        }
        // Some pruned, from the store and the index alike.
        let pruned: Vec<RecordId> = all.iter().step_by(37).map(|r| r.id).collect();
        store.prune(&pruned).unwrap();
        let mut index = LookupIndex::new();
        let mut peers = Vec::new();
        for r in all.iter().filter(|r| !pruned.contains(&r.id)) {
            index.insert_record(r).unwrap();
            if r.target.kind() == ScopeKind::Peer {
                peers.push(r.id);
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 100);
        let mut nonempty = 0;
        for _ in 0..400 {
            let q = queries(&mut rng);
            let scan = store.audit(&q).unwrap();
            let view = IndexWithPeers {
                index: &index,
                peers: &peers,
            };
            let indexed = store.audit_indexed(&q, &view).unwrap();
            assert_eq!(
                indexed.iter().map(|r| r.id).collect::<Vec<_>>(),
                scan.iter().map(|r| r.id).collect::<Vec<_>>(),
                "seed {seed}: {q:?}"
            );
            nonempty += usize::from(!scan.is_empty());
        }
        assert!(nonempty > 100, "too few queries found anything: {nonempty}");
    }
}
