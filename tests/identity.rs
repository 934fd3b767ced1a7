//! A data directory restored from a backup, or copied to start a second node,
//! never reissues an id: every acknowledged revocation ends up enforced on
//! every node. Real processes, real QUIC, real certificates.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::mesh::{revoke_tokens, wait_connected, wait_enforced_everywhere, Mesh};
use support::{copy_dir, Veto};

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// D makes 4 revocations; its data dir is copied; it makes 3 more, which
/// reach A and B; it is stopped, the copy is restored, and it starts again.
/// Its next 3 revocations get new ids and are enforced everywhere, and the 3
/// the backup lacked come back to D from its peers.
#[test]
fn a_node_restored_from_a_backup_never_reuses_an_id() {
    let mesh = Mesh::new(&["a", "b", "d"]);
    let (a, b) = (mesh.start(0), mesh.start(1));
    let mut d = mesh.start(2);
    wait_connected(&[&a, &b, &d], 2);
    let mut records = revoke_tokens(&d, "before-backup", 4);
    wait_enforced_everywhere(&[&a, &b, &d], &records);

    d.stop();
    let backup = tempfile::tempdir().unwrap();
    copy_dir(&mesh.dir(2), backup.path());
    let mut d = d.restart();
    let after_backup = revoke_tokens(&d, "after-backup", 3);
    records.extend(after_backup.iter().cloned());
    wait_enforced_everywhere(&[&a, &b, &d], &records);

    d.stop();
    std::fs::remove_dir_all(mesh.dir(2)).unwrap();
    copy_dir(backup.path(), &mesh.dir(2));
    let d = d.restart();
    // The restored node lacks what it made after the backup, until its
    // peers send it back; it enforces the rest at once.
    let restored = revoke_tokens(&d, "after-restore", 3);
    records.extend(restored.iter().cloned());
    wait_enforced_everywhere(&[&a, &b, &d], &records);

    let all = ids(&records);
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "an id was issued twice: {all:?}");
    // Three process lifetimes, three origins.
    let origins: BTreeSet<&str> = records
        .iter()
        .map(|r| r["origin"].as_str().unwrap())
        .collect();
    assert_eq!(origins.len(), 3, "{origins:?}");
    assert_eq!(d.status()["revocations"], 10);
}

/// A stopped node's data dir is copied to start a second node (a cloned VM,
/// a copied volume). Both run at once; what each revokes is enforced on every
/// node, and no id names two revocations.
#[test]
fn a_cloned_data_dir_starts_a_node_of_its_own() {
    let mesh = Mesh::new(&["a", "c", "c2"]);
    let a = mesh.start(0);
    let mut c = mesh.start(1);
    wait_connected(&[&a, &c], 1);
    let mut records = revoke_tokens(&c, "before-clone", 2);
    wait_enforced_everywhere(&[&a, &c], &records);
    c.stop();
    let clone_dir = mesh.root.path().join("clone");
    copy_dir(&mesh.dir(1), &clone_dir);
    let c = c.restart();
    let c2: Veto = mesh.start_on(2, &clone_dir, &[], Vec::new());
    wait_connected(&[&a, &c, &c2], 2);
    assert_ne!(c.status()["node"]["id"], c2.status()["node"]["id"]);
    records.extend(revoke_tokens(&c, "original", 3));
    records.extend(revoke_tokens(&c2, "clone", 3));
    wait_enforced_everywhere(&[&a, &c, &c2], &records);
    let all = ids(&records);
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "an id was issued twice: {all:?}");
}
