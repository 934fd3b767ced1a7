//! The QUIC transport over real loopback sockets with real certificates.

mod transport_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use transport_support::*;
use veto_transport::{Lane, PeerState, SendError, Transport, TransportConfig, TransportEvent};

#[tokio::test]
async fn peers_from_one_ca_connect_and_exchange_frames_on_both_lanes() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    a.add_peer(b.local_addr());

    let (a_conn, a_sees, a_dialed) = connected(&mut a_rx).await;
    let (b_conn, b_sees, b_dialed) = connected(&mut b_rx).await;
    assert_eq!((a_sees.as_str(), a_dialed), ("beta", true));
    assert_eq!((b_sees.as_str(), b_dialed), ("alpha", false));

    a.send(a_conn, Lane::Urgent, Bytes::from_static(b"push"))
        .unwrap();
    a.send(a_conn, Lane::Bulk, Bytes::from(vec![7u8; 300_000]))
        .unwrap();
    a.send(a_conn, Lane::Bulk, Bytes::new()).unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(frame(&mut b_rx).await);
    }
    assert!(got.iter().all(|(conn, _, _)| *conn == b_conn));
    assert!(got.contains(&(b_conn, Lane::Urgent, b"push".to_vec())));
    let bulk: Vec<_> = got
        .iter()
        .filter(|f| f.1 == Lane::Bulk)
        .map(|f| f.2.len())
        .collect();
    assert_eq!(
        bulk,
        vec![300_000, 0],
        "bulk frames keep their order and size"
    );

    b.send(b_conn, Lane::Urgent, Bytes::from_static(b"ack"))
        .unwrap();
    assert_eq!(
        frame(&mut a_rx).await,
        (a_conn, Lane::Urgent, b"ack".to_vec())
    );

    let stats = b.stats(b_conn).unwrap();
    assert_eq!(stats.peer_name, "alpha");
    assert_eq!((stats.frames_in, stats.bytes_in), (3, 300_004));
    assert_eq!(stats.frames_out, 1);
    assert_eq!(a.peers()[0].state, PeerState::Connected);
    assert_eq!(a.peers()[0].name.as_deref(), Some("beta"));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn send_refuses_oversize_frames_unknown_connections_and_full_queues() {
    let cluster = Cluster::new();
    let mut config = fast_config(localhost(), cluster.tls("alpha"));
    config.max_frame_bytes = 1024;
    config.urgent_queue_bytes = 4096;
    config.bulk_queue_bytes = 4096;
    let (a, mut a_rx) = Transport::bind(config).await.unwrap();
    let mut config = fast_config(localhost(), cluster.tls("beta"));
    config.event_capacity = 1;
    let (b, mut b_rx) = Transport::bind(config).await.unwrap();
    a.add_peer(b.local_addr());
    let (conn, _, _) = connected(&mut a_rx).await;
    connected(&mut b_rx).await;

    assert_eq!(
        a.send(conn, Lane::Urgent, Bytes::from(vec![0; 1025])),
        Err(SendError::TooLarge {
            len: 1025,
            max: 1024
        })
    );
    let unknown = veto_transport::ConnId(9999);
    assert_eq!(
        a.send(unknown, Lane::Urgent, Bytes::new()),
        Err(SendError::UnknownConnection(unknown))
    );
    // beta does not read its events, so its channel, then QUIC flow control,
    // then alpha's bounded queue fill up: the queue must refuse, not grow.
    let mut full = false;
    for _ in 0..100_000 {
        match a.send(conn, Lane::Bulk, Bytes::from(vec![1; 1024])) {
            Ok(()) => tokio::task::yield_now().await,
            Err(SendError::Full(Lane::Bulk)) => {
                full = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(full, "the bulk queue never filled");
    assert!(a.stats(conn).unwrap().bulk_queued <= 4096);
    // The urgent lane has its own queue.
    a.send(conn, Lane::Urgent, Bytes::from_static(b"still"))
        .unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_foreign_ca_is_refused_in_both_directions() {
    let ours = Cluster::new();
    let theirs = Cluster::new();
    let (a, mut a_rx) = start(&ours, "alpha").await;
    let (r, mut r_rx) = start(&theirs, "rogue").await;
    a.add_peer(r.local_addr());
    r.add_peer(a.local_addr());

    let seen_by_a = drain(&mut a_rx, Duration::from_millis(1500)).await;
    let seen_by_r = drain(&mut r_rx, Duration::from_millis(10)).await;
    assert!(seen_by_a.is_empty(), "alpha saw {seen_by_a:?}");
    assert!(seen_by_r.is_empty(), "rogue saw {seen_by_r:?}");
    assert!(a.totals().tls_rejected > 0);
    assert!(r.totals().tls_rejected > 0);
    assert!(matches!(
        a.peers()[0].state,
        PeerState::Backoff | PeerState::Dialing
    ));
    assert!(a.totals().dial_failures > 0);
    a.shutdown().await;
    r.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_before_any_frame() {
    let ours = Cluster::new();
    let theirs = Cluster::new();
    let (a, mut a_rx) = start(&ours, "alpha").await;
    let rogue =
        veto_transport::tls::generate_node_cert(&theirs.ca_pem(), &theirs.ca_key_pem(), "rogue")
            .unwrap();

    // The rogue trusts our CA, so only alpha's check of the client stands in its way.
    for identity in [
        Some((rogue.cert_pem.as_str(), rogue.key_pem.as_str())),
        None,
    ] {
        let client = raw_client(&ours.ca_pem(), identity);
        let rejected_before = a.totals().tls_rejected;
        let outcome = async {
            let conn = client.connect(a.local_addr(), "alpha").ok()?.await.ok()?;
            let mut send = conn.open_uni().await.ok()?;
            send.write_all(b"U\0\0\0\x04evil").await.ok()?;
            conn.accept_uni().await.ok()
        };
        let reached = tokio::time::timeout(Duration::from_secs(3), outcome)
            .await
            .ok()
            .flatten();
        assert!(
            reached.is_none(),
            "alpha opened a lane to an unauthenticated client"
        );
        let counted = eventually(Duration::from_secs(2), || {
            a.totals().tls_rejected > rejected_before
        })
        .await;
        assert!(counted, "refusal not counted");
        client.close(0u32.into(), b"");
    }
    let events = drain(&mut a_rx, Duration::from_millis(300)).await;
    assert!(events.is_empty(), "alpha reported {events:?}");
    assert!(a.totals().handshake_failures >= 2);
    a.shutdown().await;
}

#[tokio::test]
async fn simultaneous_dials_leave_exactly_one_connection() {
    let cluster = Cluster::new();
    for round in 0..4 {
        let (a, mut a_rx) = start(&cluster, "alpha").await;
        let (b, mut b_rx) = start(&cluster, "beta").await;
        a.add_peer(b.local_addr());
        b.add_peer(a.local_addr());

        let settled = eventually(Duration::from_secs(5), || {
            a.connections().len() == 1 && b.connections().len() == 1
        })
        .await;
        assert!(settled, "round {round}: no single connection");
        // Let any straggling duplicate resolve, then check nothing flaps.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let a_conns = a.connections();
        let b_conns = b.connections();
        assert_eq!((a_conns.len(), b_conns.len()), (1, 1), "round {round}");
        // The survivor is the one alpha (the smaller name) dialled, on both ends.
        assert!(a_conns[0].1.dialed, "round {round}: alpha kept beta's dial");
        assert!(
            !b_conns[0].1.dialed,
            "round {round}: beta kept its own dial"
        );

        for (rx, who) in [(&mut a_rx, "alpha"), (&mut b_rx, "beta")] {
            let events = drain(rx, Duration::from_millis(50)).await;
            let mut up = 0i32;
            for event in &events {
                match event {
                    TransportEvent::Connected { .. } => up += 1,
                    TransportEvent::Disconnected { .. } => up -= 1,
                    TransportEvent::Frame { .. } | TransportEvent::Datagram { .. } => {}
                }
                assert!(
                    up <= 1,
                    "round {round}: {who} had two connections up: {events:?}"
                );
            }
            assert_eq!(up, 1, "round {round}: {who}: {events:?}");
        }
        a.send(a_conns[0].0, Lane::Urgent, Bytes::from_static(b"hi"))
            .unwrap();
        assert_eq!(frame(&mut b_rx).await.2, b"hi");
        let quiet = drain(&mut a_rx, Duration::from_millis(300)).await;
        assert!(quiet.is_empty(), "round {round}: flapping: {quiet:?}");
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
async fn dialling_ourselves_is_refused() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    a.add_peer(a.local_addr());
    assert!(
        eventually(Duration::from_secs(3), || a.peers()[0].state
            == PeerState::Myself)
        .await
    );
    assert_eq!(a.peers()[0].name.as_deref(), Some("alpha"));
    let events = drain(&mut a_rx, Duration::from_millis(200)).await;
    assert!(events.is_empty(), "{events:?}");
    a.shutdown().await;
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected_without_help() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    let b_addr = b.local_addr();
    a.add_peer(b_addr);
    let (first, _, _) = connected(&mut a_rx).await;
    connected(&mut b_rx).await;

    b.shutdown().await;
    drop(b_rx);
    let reason = disconnected(&mut a_rx, first).await;
    assert!(reason.contains("shutting down"), "{reason}");

    // Same port again; it may take a moment for the old socket to be released.
    let mut rebound = None;
    for _ in 0..100 {
        match Transport::bind(fast_config(b_addr, cluster.tls("beta"))).await {
            Ok(t) => {
                rebound = Some(t);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let (b2, mut b2_rx) = rebound.expect("could not rebind beta's port");
    let (second, name, dialed) = connected(&mut a_rx).await;
    assert_ne!(second, first);
    assert_eq!((name.as_str(), dialed), ("beta", true));
    let (b2_conn, _, _) = connected(&mut b2_rx).await;
    b2.send(b2_conn, Lane::Urgent, Bytes::from_static(b"back"))
        .unwrap();
    assert_eq!(
        frame(&mut a_rx).await,
        (second, Lane::Urgent, b"back".to_vec())
    );
    a.shutdown().await;
    b2.shutdown().await;
}

/// An idle timeout far longer than a test (QUIC uses the smaller of the two
/// ends'), so that only a stateless reset can end a stale connection quickly.
fn long_idle(mut config: TransportConfig) -> TransportConfig {
    config.idle_timeout = Duration::from_secs(60);
    config
}

/// Runs `beta` in a runtime of its own on another thread, so that it can die
/// without closing anything, like a crashed process. Returns its address and
/// the trigger of the crash.
fn start_crashable(tls: veto_transport::tls::ClusterTls) -> (std::net::SocketAddr, impl FnOnce()) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (crash_tx, crash_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (b, b_rx) = runtime
            .block_on(Transport::bind(long_idle(fast_config(localhost(), tls))))
            .unwrap();
        addr_tx.send(b.local_addr()).unwrap();
        let _ = runtime.block_on(crash_rx);
        // The runtime goes first: its tasks, quinn's driver included, vanish
        // without sending a close.
        drop(runtime);
        drop((b, b_rx));
    });
    let addr = addr_rx.recv().unwrap();
    (addr, move || {
        crash_tx.send(()).unwrap();
        thread.join().unwrap();
    })
}

#[tokio::test]
async fn a_crashed_peer_that_comes_back_resets_its_stale_connection_at_once() {
    let cluster = Cluster::new();
    let beta = cluster.tls("beta");
    let config = long_idle(fast_config(localhost(), cluster.tls("alpha")));
    let (a, mut a_rx) = Transport::bind(config).await.unwrap();
    let (b_addr, crash) = start_crashable(beta.clone());
    a.add_peer(b_addr);
    let (stale, _, _) = connected(&mut a_rx).await;

    crash();
    let restarted = Instant::now();
    let mut rebound = None;
    for _ in 0..100 {
        match Transport::bind(long_idle(fast_config(b_addr, beta.clone()))).await {
            Ok(t) => {
                rebound = Some(t);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let (b2, mut b2_rx) = rebound.expect("could not rebind beta's port");
    // Same key, same reset tokens: alpha's next keep-alive draws a reset.
    let reason = disconnected(&mut a_rx, stale).await;
    assert!(reason.contains("reset"), "{reason}");
    let (fresh, name, _) = connected(&mut a_rx).await;
    assert_eq!(name, "beta");
    assert!(
        restarted.elapsed() < Duration::from_secs(5),
        "{:?}",
        restarted.elapsed()
    );
    let (b2_conn, _, _) = connected(&mut b2_rx).await;
    b2.send(b2_conn, Lane::Urgent, Bytes::from_static(b"fresh"))
        .unwrap();
    assert_eq!(
        frame(&mut a_rx).await,
        (fresh, Lane::Urgent, b"fresh".to_vec())
    );
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn removing_a_peer_closes_its_connection_and_stops_dialling() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    a.add_peer(b.local_addr());
    let (conn, _, _) = connected(&mut a_rx).await;
    let (b_conn, _, _) = connected(&mut b_rx).await;

    a.remove_peer(b.local_addr());
    assert_eq!(disconnected(&mut a_rx, conn).await, "peer removed");
    assert!(disconnected(&mut b_rx, b_conn)
        .await
        .contains("peer removed"));
    assert!(a.peers().is_empty());
    let later = drain(&mut a_rx, Duration::from_millis(800)).await;
    assert!(later.is_empty(), "alpha redialled: {later:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn closing_a_connection_reports_the_reason_and_the_dialler_reconnects() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    a.add_peer(b.local_addr());
    connected(&mut a_rx).await;
    let (b_conn, _, _) = connected(&mut b_rx).await;

    b.close(b_conn, "maintenance");
    assert_eq!(disconnected(&mut b_rx, b_conn).await, "maintenance");
    assert!(b.stats(b_conn).is_none());
    assert_eq!(
        b.send(b_conn, Lane::Urgent, Bytes::new()),
        Err(SendError::UnknownConnection(b_conn))
    );
    let (again, _, _) = connected(&mut b_rx).await;
    assert_ne!(again, b_conn);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_urgent_frame_overtakes_a_bulk_backlog() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    a.add_peer(b.local_addr());
    let (conn, _, _) = connected(&mut a_rx).await;
    connected(&mut b_rx).await;

    // Queue as much bulk as alpha will take (megabytes), then one urgent frame.
    let mut bulk_sent = 0usize;
    while a
        .send(conn, Lane::Bulk, Bytes::from(vec![0; 64 * 1024]))
        .is_ok()
    {
        bulk_sent += 1;
    }
    assert!(bulk_sent >= 32, "queue took only {bulk_sent} frames");
    a.send(conn, Lane::Urgent, Bytes::from_static(b"revoke!"))
        .unwrap();

    let mut bulk_before_urgent = 0;
    loop {
        let (_, lane, bytes) = frame(&mut b_rx).await;
        match lane {
            Lane::Urgent => {
                assert_eq!(bytes, b"revoke!");
                break;
            }
            Lane::Bulk => bulk_before_urgent += 1,
        }
    }
    assert!(
        bulk_before_urgent < bulk_sent,
        "the urgent frame waited for all {bulk_sent} bulk frames"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn invalid_settings_are_refused_at_bind() {
    let cluster = Cluster::new();
    let base = || TransportConfig::new(localhost(), cluster.tls("alpha"));
    let mut c = base();
    c.keep_alive = c.idle_timeout;
    assert!(Transport::bind(c).await.is_err());
    let mut c = base();
    c.urgent_queue_bytes = c.max_frame_bytes;
    assert!(Transport::bind(c).await.is_err());
    let mut c = base();
    c.backoff_min = Duration::from_secs(60);
    assert!(Transport::bind(c).await.is_err());
}
