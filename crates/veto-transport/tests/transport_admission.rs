//! The node's admission: asked right after the handshake, on both dial and
//! accept, with the certificate's name and SHA-256; a refused peer never
//! gets a `Connected`, and the name a dial proved is still recorded.

mod transport_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use transport_support::*;
use veto_transport::tls::{cert_file_sha256, ClusterTls};
use veto_transport::{Admission, PeerIdentity, Transport, TransportEvent};

type Seen = Arc<Mutex<Vec<(PeerIdentity, Option<SocketAddr>)>>>;

/// An admission that refuses `refused` and records every question.
fn refusing(refused: &'static str) -> (Admission, Seen) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let admission = Admission::new(move |peer, dialed| {
        log.lock().unwrap().push((peer.clone(), dialed));
        if peer.name == refused {
            return Err(format!("{refused} is not welcome"));
        }
        Ok(())
    });
    (admission, seen)
}

async fn bind(
    tls: ClusterTls,
    admission: Admission,
) -> (Transport, tokio::sync::mpsc::Receiver<TransportEvent>) {
    let mut config = fast_config(localhost(), tls);
    config.admission = admission;
    Transport::bind(config).await.unwrap()
}

#[tokio::test]
async fn a_refused_peer_gets_no_connection_on_either_side() {
    let cluster = Cluster::new();
    let (admission, seen) = refusing("mallory");
    let (alice, mut alice_events) = bind(cluster.tls("alice"), admission).await;
    let mallory_files = cluster.files("mallory");
    let mallory_sha = cert_file_sha256(&mallory_files.cert).unwrap();
    // Loaded from the files just written: `start` would write new ones.
    let (mallory, mut mallory_events) = Transport::bind(fast_config(
        localhost(),
        ClusterTls::load(&mallory_files).unwrap(),
    ))
    .await
    .unwrap();

    // Mallory dials in: alice's admission sees its name and fingerprint.
    mallory.add_peer(alice.local_addr());
    assert!(
        eventually(Duration::from_secs(10), || alice.totals().refused >= 2).await,
        "alice refused mallory's dials"
    );
    let asked = seen.lock().unwrap().clone();
    assert!(asked.iter().all(|(p, dialed)| p.name == "mallory"
        && p.cert_sha256 == mallory_sha
        && dialed.is_none()));
    // Alice dials mallory: refused too, with the dialled address, and the
    // name proved there is recorded.
    alice.add_peer(mallory.local_addr());
    assert!(
        eventually(Duration::from_secs(10), || {
            seen.lock()
                .unwrap()
                .iter()
                .any(|(_, d)| *d == Some(mallory.local_addr()))
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            alice
                .peers()
                .iter()
                .any(|p| p.name.as_deref() == Some("mallory"))
        })
        .await
    );
    let events = drain(&mut alice_events, Duration::from_millis(300)).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TransportEvent::Connected { .. })),
        "{events:?}"
    );
    let events = drain(&mut mallory_events, Duration::from_millis(300)).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, TransportEvent::Connected { .. })),
        "{events:?}"
    );
    assert!(alice.connections().is_empty());
}

#[tokio::test]
async fn an_admitted_peer_connects_and_its_fingerprint_is_reported() {
    let cluster = Cluster::new();
    let (admission, _seen) = refusing("mallory");
    let (alice, mut alice_events) = bind(cluster.tls("alice"), admission).await;
    let bob_files = cluster.files("bob");
    let bob_sha = cert_file_sha256(&bob_files.cert).unwrap();
    let (bob, _bob_events) = Transport::bind(fast_config(
        localhost(),
        ClusterTls::load(&bob_files).unwrap(),
    ))
    .await
    .unwrap();
    bob.add_peer(alice.local_addr());
    let (conn, sha) = wait_for(&mut alice_events, Duration::from_secs(10), |e| match e {
        TransportEvent::Connected {
            conn, cert_sha256, ..
        } => Some((*conn, *cert_sha256)),
        _ => None,
    })
    .await;
    assert_eq!(sha, bob_sha);
    assert_eq!(alice.stats(conn).map(|s| s.cert_sha256), Some(bob_sha));
    assert_eq!(alice.totals().refused, 0);
}
