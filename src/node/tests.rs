//! The node's own ordering promises, on a real store in a temporary
//! directory: what the status counts, a check finds.

use std::sync::Arc;
use std::time::Duration;

use veto_api::Backend as _;
use veto_core::{Check, Frontier, Hlc, NodeId, Record, RecordId, Target};
use veto_store::{OpenOptions, Store};

use super::{Node, NodeSettings};
use crate::peers::PeerDirectory;

pub(super) fn node(dir: &std::path::Path) -> Arc<Node> {
    let store = Store::open(dir, OpenOptions::default()).unwrap();
    let settings = NodeSettings {
        name: "test".into(),
        region: "here".into(),
        max_clock_offset: Duration::from_millis(500),
        feed: Default::default(),
        faults: Default::default(),
        audit: None,
    };
    let (node, _records) = Node::new(store, settings, Arc::new(PeerDirectory::disabled())).unwrap();
    node.load().unwrap();
    node
}

/// Records a peer made, as its replication would hand them over.
pub(super) fn from_a_peer(count: u64) -> Vec<Record> {
    let expires_at = crate::node::wall_clock().as_secs() + 86_400;
    (1..=count)
        .map(|seq| Record {
            id: RecordId {
                origin: NodeId::new(7),
                seq,
            },
            hlc: Hlc::from_unix(Duration::from_secs(1_700_000_000 + seq)),
            target: Target::Token {
                iss: None,
                jti: format!("peer-{seq}"),
            },
            expires_at,
            reason: String::new(),
            actor: "admin".into(),
        })
        .collect()
}

/// Records from a peer are stored first and indexed after: an operator (or a
/// test) who reads the status while a large batch is between the two must
/// not see it counted, or a check right after would say "not revoked" for a
/// record the digest already claims.
#[test]
fn the_status_never_counts_a_record_a_check_does_not_find() {
    const COUNT: u64 = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path());
    let last = format!("peer-{COUNT}");
    let records = from_a_peer(COUNT);
    let storing = {
        let node = Arc::clone(&node);
        std::thread::spawn(move || node.store_remote(&records, &Frontier::default(), &[]))
    };
    loop {
        let stored = storing.is_finished();
        let counted = node.status().revocations;
        if counted > 0 {
            assert_eq!(counted, COUNT, "one batch is stored at once");
            let check = Check {
                jti: Some(&last),
                ..Check::default()
            };
            assert!(
                node.check(&check).is_some(),
                "the status counted {counted} records, but a check does not find the last"
            );
            break;
        }
        assert!(
            !stored,
            "the batch was stored but the status never counted it"
        );
    }
    storing.join().unwrap().unwrap();
}
