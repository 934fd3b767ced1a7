//! Three real nodes, each in its own network namespace, replicating over a
//! real (virtual) network: every packet between nodes is delayed 50 ms ± 5 ms
//! each way and 2% are lost (by `tc netem`, or by `veto-relay` on kernels
//! without netem), a partition is nftables dropping a node's packets at its
//! interface, and a node is killed with SIGKILL right after it acknowledged
//! revocations. Needs root, `ip` and `nft`; skips
//! without them unless `VETO_REQUIRE_GATEWAYS=1`.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::mesh::{
    connected, connected_to, enforced, revoke_tokens, wait_connected, wait_enforced_everywhere,
};
use support::netns::Net;
use support::{eventually, make_certs, Veto};

const NAMES: [&str; 3] = ["a", "b", "c"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn all(nodes: &[Veto]) -> Vec<&Veto> {
    nodes.iter().collect()
}

/// Asserts every node holds exactly `records` (each enforced, and no others).
fn assert_holds_exactly(nodes: &[Veto], records: &[Value]) {
    for (node, name) in nodes.iter().zip(NAMES) {
        assert_eq!(
            node.status()["revocations"],
            records.len(),
            "node {name} holds other records than those acknowledged"
        );
        for r in records {
            assert!(enforced(node, r), "node {name} does not enforce {r}");
        }
    }
}

#[test]
fn namespaced_nodes_converge_through_delay_loss_a_partition_and_a_crash() {
    let Some(net) = Net::create_or_skip(NAMES.len()) else {
        return;
    };
    let started = Instant::now();
    let phase = |what: &str| eprintln!("netns: {what} at {:.1?}", started.elapsed());

    let certs = tempfile::tempdir().expect("a temp dir for certificates");
    make_certs(certs.path(), &NAMES);
    let dirs: Vec<tempfile::TempDir> = NAMES
        .iter()
        .map(|_| tempfile::tempdir().expect("a temp dir for a data dir"))
        .collect();
    // Every packet, either way, waits 50 ms give or take 5 (so packets
    // reorder), and 2% never arrive.
    let links = net.impair(50, 5, 0.02, 100);
    let mut nodes: Vec<Veto> = (0..NAMES.len())
        .map(|i| {
            let peers: Vec<String> = (0..NAMES.len())
                .filter(|&j| j != i)
                .map(|j| links.peer_addr(&net, j))
                .collect();
            net.start_node(i, NAMES[i], certs.path(), dirs[i].path(), &peers)
        })
        .collect();
    wait_connected(&all(&nodes), 2);
    phase("connected");

    // Revocations at every node reach every node.
    let mut records = Vec::new();
    for (node, name) in nodes.iter().zip(NAMES) {
        records.extend(revoke_tokens(node, &format!("steady-{name}"), 5));
    }
    wait_enforced_everywhere(&all(&nodes), &records);
    phase("steady-state records everywhere");

    // Partition c. Both sides keep acknowledging writes.
    net.isolate(C);
    let split_a = revoke_tokens(&nodes[A], "split-a", 5);
    let split_c = revoke_tokens(&nodes[C], "split-c", 5);
    eventually(Duration::from_secs(30), "b has a's records", || {
        split_a.iter().all(|r| enforced(&nodes[B], r))
    });
    // QUIC calls c's connections lost only after its idle timeout passed
    // with nothing getting through: a packet let through by then would have
    // carried the records across.
    eventually(
        Duration::from_secs(30),
        "c's links down on both sides",
        || {
            !connected_to(&nodes[A], "c")
                && !connected_to(&nodes[B], "c")
                && connected(&nodes[C]) == 0
        },
    );
    for r in &split_a {
        assert!(!enforced(&nodes[C], r), "{r} crossed the partition to c");
    }
    for r in &split_c {
        for (node, name) in nodes[..C].iter().zip(NAMES) {
            assert!(!enforced(node, r), "{r} crossed the partition to {name}");
        }
    }
    assert!(net.dropped(C) > 0, "nftables dropped none of c's packets");
    phase("partition held");

    net.heal(C);
    records.extend(split_a);
    records.extend(split_c);
    wait_enforced_everywhere(&all(&nodes), &records);
    assert_holds_exactly(&nodes, &records);
    phase("healed and converged");

    // SIGKILL b right after it acknowledged writes, and cut it off before it
    // comes back: what it enforces then comes from its own disk, not from
    // its peers.
    let acked_b = revoke_tokens(&nodes[B], "acked-b", 5);
    nodes[B].kill9();
    net.isolate(B);
    let while_down = revoke_tokens(&nodes[A], "while-b-down", 3);
    net.restart_node(B, &mut nodes[B]);
    for r in records.iter().chain(&acked_b) {
        assert!(
            enforced(&nodes[B], r),
            "b lost {r}, acknowledged before its kill -9"
        );
    }
    phase("b restarted with its acknowledged records");

    net.heal(B);
    records.extend(acked_b);
    records.extend(while_down);
    wait_enforced_everywhere(&all(&nodes), &records);
    assert_holds_exactly(&nodes, &records);
    phase("converged after the crash");

    let lost = links.assert_in_path(&net);
    eprintln!("netns: the links lost {lost} packets");
}
