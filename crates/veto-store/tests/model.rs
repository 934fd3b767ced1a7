//! Random appends, covers, prunes and reopens, checked against veto-core's
//! in-memory replica of the set.

mod common;

use std::collections::BTreeSet;

use common::{id, node, token, with_target};
use proptest::prelude::*;
use veto_core::{AuditQuery, Frontier, Record, RecordId, RevocationSet, Target};
use veto_store::{OpenOptions, Store};

/// The one record an id stands for: content is a function of the id, as it is
/// in a real cluster where an origin never reuses a seq.
fn record_for(origin: u64, seq: u64) -> Record {
    let base = token(
        origin,
        seq,
        1_000 + (seq * 7_919 + origin * 13) % 500,
        2_000 + (seq * 31) % 300,
    );
    match seq % 3 {
        0 => base,
        1 => with_target(
            base,
            Target::Session {
                iss: None,
                sid: format!("sid-{seq}"),
            },
        ),
        _ => with_target(
            base,
            Target::Issuer {
                iss: format!("https://idp-{origin}"),
                before: seq,
            },
        ),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(u64, u64)>),
    Prune(Vec<(u64, u64)>),
    Cover(Vec<(u64, u64)>),
    Reopen,
}

fn ids() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((1u64..4, 1u64..300), 0..120)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => ids().prop_map(Op::Append),
        2 => ids().prop_map(Op::Prune),
        1 => prop::collection::vec((1u64..4, 1u64..300), 0..10).prop_map(Op::Cover),
        1 => Just(Op::Reopen),
    ]
}

struct Model {
    set: RevocationSet,
    /// Ids covered without ever being stored.
    covered_only: Frontier,
}

impl Model {
    fn covers(&self, id: RecordId) -> bool {
        self.set.covers(id) || self.covered_only.contains(id)
    }

    fn frontier(&self) -> Frontier {
        let mut f = self.set.frontier().clone();
        f.union_with(&self.covered_only);
        f
    }
}

fn check(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let report = store.verify().unwrap();
    prop_assert_eq!(report.records, model.set.len() as u64);
    prop_assert_eq!(store.covered().unwrap(), model.frontier());
    prop_assert_eq!(store.digest().unwrap(), model.set.digest());
    prop_assert_eq!(store.live_count(), model.set.len() as u64);
    let mut stored = Vec::new();
    store.for_each_record(|r| stored.push(r)).unwrap();
    let expected: Vec<Record> = model.set.iter().cloned().collect();
    prop_assert_eq!(&stored, &expected);

    let mut newest: Vec<Record> = expected.clone();
    newest.sort_by_key(|r| std::cmp::Reverse((r.hlc, r.id)));
    newest.truncate(1_000);
    let audit = store
        .audit(&AuditQuery {
            limit: 1_000,
            ..AuditQuery::default()
        })
        .unwrap();
    prop_assert_eq!(audit, newest);

    let now = 2_150;
    let due: BTreeSet<RecordId> = expected
        .iter()
        .filter(|r| r.expires_at < now)
        .map(|r| r.id)
        .collect();
    let listed = store.expired(now, 0, usize::MAX).unwrap();
    let got: BTreeSet<RecordId> = listed.iter().map(|r| r.id).collect();
    prop_assert_eq!(listed.len(), got.len(), "an expired record is listed twice");
    prop_assert_eq!(got, due);

    for origin in 1..4 {
        let range = store
            .read_range(node(origin), 50..=250, usize::MAX)
            .unwrap();
        let want: Vec<Record> = expected
            .iter()
            .filter(|r| r.id.origin == node(origin) && (50..=250).contains(&r.id.seq))
            .cloned()
            .collect();
        prop_assert_eq!(range, want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_in_memory_set(ops in prop::collection::vec(op(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), OpenOptions::default()).unwrap();
        let mut model = Model { set: RevocationSet::new(), covered_only: Frontier::new() };
        for op in ops {
            match op {
                Op::Append(pairs) => {
                    let records: Vec<Record> =
                        pairs.iter().map(|(o, s)| record_for(*o, *s)).collect();
                    let mut want = Vec::new();
                    for r in &records {
                        if !model.covers(r.id) {
                            model.set.insert(r.clone());
                            want.push(r.clone());
                        }
                    }
                    prop_assert_eq!(store.append(&records).unwrap(), want);
                }
                Op::Prune(pairs) => {
                    let ids: Vec<RecordId> = pairs.iter().map(|(o, s)| id(*o, *s)).collect();
                    let mut removed = 0;
                    for i in ids.iter().collect::<BTreeSet<_>>() {
                        removed += usize::from(model.set.prune(*i).is_some());
                    }
                    prop_assert_eq!(store.prune(&ids).unwrap(), removed);
                }
                Op::Cover(pairs) => {
                    let ids: Vec<RecordId> = pairs.iter().map(|(o, s)| id(*o, *s)).collect();
                    for i in &ids {
                        if !model.covers(*i) {
                            model.covered_only.insert(*i);
                        }
                    }
                    store.cover(&ids).unwrap();
                }
                Op::Reopen => {
                    let node_id = store.node_id();
                    drop(store);
                    store = Store::open(dir.path(), OpenOptions::default()).unwrap();
                    prop_assert_eq!(store.node_id(), node_id);
                }
            }
            check(&store, &model)?;
        }
        drop(store);
        let store = Store::open(dir.path(), OpenOptions::default()).unwrap();
        check(&store, &model)?;
    }
}
