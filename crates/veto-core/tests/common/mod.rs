//! Generators shared by the property tests.
//!
//! Every pool is small on purpose: ids collide across replicas, keys collide
//! across records and checks hit records often, which is where merge and lookup
//! bugs live.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use veto_core::{Claims, Hlc, NodeId, Record, RecordId, Target};

/// Origins records come from.
pub(crate) const ORIGINS: [u64; 3] = [0x1111, 0x2222, 0x3333];
/// The highest seq generated per origin.
pub(crate) const MAX_SEQ: u64 = 8;
/// Issuers; a record or check may also have none.
pub(crate) const ISSUERS: [&str; 3] = ["https://a", "https://b", "https://c"];
/// Values for jti, sid, sub, client_id and kid. Shared across fields so that the
/// index's key namespaces are exercised too.
pub(crate) const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
/// Raw opaque tokens, revoked by hash.
pub(crate) const OPAQUE: [&str; 3] = ["opaque-0", "opaque-1", "opaque-2"];
/// Bulk cutoffs.
pub(crate) const CUTOFFS: [u64; 3] = [100, 200, 300];
/// `iat` values: below, between and above the cutoffs, and equal to one.
pub(crate) const IATS: [u64; 5] = [50, 100, 150, 250, 350];

/// A record id from pool indices.
pub(crate) fn id(origin: usize, seq: u64) -> RecordId {
    RecordId {
        origin: NodeId::new(ORIGINS[origin % ORIGINS.len()]),
        seq,
    }
}

/// Any record id from the pools.
pub(crate) fn any_id() -> impl Strategy<Value = RecordId> {
    (0..ORIGINS.len(), 1..=MAX_SEQ).prop_map(|(o, s)| id(o, s))
}

fn iss_from(choice: usize) -> Option<String> {
    ISSUERS.get(choice).map(|s| (*s).to_owned())
}

/// A target of any scope, built from pool choices.
fn target_from(scope: u8, iss: usize, key: usize, cutoff: usize) -> Target {
    let iss = iss_from(iss);
    let key_s = KEYS[key % KEYS.len()].to_owned();
    let before = CUTOFFS[cutoff % CUTOFFS.len()];
    match scope % 7 {
        0 => Target::Token { iss, jti: key_s },
        1 => Target::opaque_token(OPAQUE[key % OPAQUE.len()]),
        2 => Target::Session { iss, sid: key_s },
        3 => Target::Subject {
            iss,
            sub: key_s,
            before,
        },
        4 => Target::Client {
            iss,
            client_id: key_s,
            before,
        },
        5 => Target::Issuer {
            iss: ISSUERS[key % ISSUERS.len()].to_owned(),
            before,
        },
        _ => Target::Key { iss, kid: key_s },
    }
}

/// Any target of any scope, with or without an issuer.
pub(crate) fn any_target() -> impl Strategy<Value = Target> {
    // `iss` index ISSUERS.len() stands for "no issuer".
    (0u8..7, 0..=ISSUERS.len(), 0..KEYS.len(), 0..CUTOFFS.len())
        .prop_map(|(scope, iss, key, cutoff)| target_from(scope, iss, key, cutoff))
}

/// The one record an id names. An origin never reuses a seq, so every replica
/// that holds this id holds exactly this content.
pub(crate) fn record_for(id: RecordId) -> Record {
    let mut rng = StdRng::seed_from_u64(id.origin.get().wrapping_mul(0x9e37_79b9) ^ id.seq);
    let target = target_from(
        rng.gen_range(0..7),
        rng.gen_range(0..=ISSUERS.len()),
        rng.gen_range(0..KEYS.len()),
        rng.gen_range(0..CUTOFFS.len()),
    );
    Record {
        id,
        hlc: Hlc(1_000 << 32 | id.seq),
        target,
        expires_at: rng.gen_range(1_000..2_000),
        reason: format!("reason {}", rng.gen_range(0..3)),
        actor: format!("actor {}", rng.gen_range(0..3)),
    }
}

/// One step in building a replica.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// The replica learns this record.
    Add(RecordId),
    /// The replica garbage-collects this id.
    Prune(RecordId),
}

/// A step; adds outnumber prunes so that sets are rarely empty.
pub(crate) fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => any_id().prop_map(Step::Add),
        1 => any_id().prop_map(Step::Prune),
    ]
}

/// The steps that build one replica.
pub(crate) fn any_steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(any_step(), 0..24)
}

/// Builds a replica by applying `steps` through the inherent API.
pub(crate) fn replica(steps: &[Step]) -> veto_core::RevocationSet {
    let mut set = veto_core::RevocationSet::new();
    for step in steps {
        match step {
            Step::Add(id) => {
                set.insert(record_for(*id));
            }
            Step::Prune(id) => {
                set.prune(*id);
            }
        }
    }
    set
}

/// A set of records with distinct ids whose targets are drawn independently, so
/// that keys repeat across records. Some seqs are far beyond anything a test
/// would reach by counting, which is where compact encodings run out of bits.
pub(crate) fn any_records() -> impl Strategy<Value = Vec<Record>> {
    let seq_base = prop::sample::select(&[0u64, 0, 0, 1 << 32, (1 << 40) - 8, 1 << 47][..]);
    prop::collection::vec((0..ORIGINS.len(), any_target(), seq_base), 0..40).prop_map(|picks| {
        picks
            .into_iter()
            .enumerate()
            .map(|(i, (origin, target, base))| Record {
                id: id(origin, base + i as u64 + 1),
                hlc: Hlc(0),
                target,
                expires_at: 0,
                reason: String::new(),
                actor: String::new(),
            })
            .collect()
    })
}

fn maybe_key() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(&KEYS[..]).prop_map(str::to_owned))
}

/// A check with a random subset of fields, from the same pools as the records.
pub(crate) fn any_check() -> impl Strategy<Value = Claims> {
    (
        prop::option::of(prop::sample::select(&ISSUERS[..]).prop_map(str::to_owned)),
        maybe_key(),
        maybe_key(),
        maybe_key(),
        maybe_key(),
        maybe_key(),
        prop::option::of(prop::sample::select(&IATS[..])),
        prop::option::of(prop::sample::select(&OPAQUE[..])),
    )
        .prop_map(|(iss, sub, jti, sid, client_id, kid, iat, opaque)| Claims {
            iss,
            sub,
            jti,
            sid,
            client_id,
            kid,
            iat,
            token_sha256: opaque.map(|t| match Target::opaque_token(t) {
                Target::TokenHash { sha256 } => sha256,
                _ => unreachable!("opaque_token always hashes"),
            }),
            exp: None,
        })
}
