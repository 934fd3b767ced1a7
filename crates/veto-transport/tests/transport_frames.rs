//! A peer with a valid certificate that breaks the wire format is cut off, and
//! only that peer.

mod transport_support;

use std::time::Duration;

use bytes::Bytes;
use transport_support::*;
use veto_transport::{Lane, TransportEvent};

/// What the misbehaving client writes on its urgent lane after the tag.
struct Case {
    name: &'static str,
    urgent_tag: u8,
    payload: &'static [u8],
    finish: bool,
    reason: &'static str,
    announced: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "oversize length",
        urgent_tag: b'U',
        payload: &[0xff, 0xff, 0xff, 0xff],
        finish: false,
        reason: "exceeds the 1048576-byte limit",
        announced: true,
    },
    Case {
        name: "truncated frame",
        urgent_tag: b'U',
        payload: &[0, 0, 0, 100, 1, 2, 3],
        finish: true,
        reason: "truncated frame: 3 of 100 bytes",
        announced: true,
    },
    Case {
        name: "truncated length",
        urgent_tag: b'U',
        payload: &[0, 0],
        finish: true,
        reason: "truncated frame length",
        announced: true,
    },
    Case {
        name: "unknown lane tag",
        urgent_tag: b'X',
        payload: b"garbage",
        finish: false,
        reason: "unknown lane tag 0x58",
        announced: false,
    },
];

#[tokio::test]
async fn a_malformed_frame_closes_only_the_offending_connection() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    b.add_peer(a.local_addr());
    let (a_to_b, _, _) = connected(&mut a_rx).await;
    let (b_to_a, _, _) = connected(&mut b_rx).await;
    let mallory = veto_transport::tls::generate_node_cert(
        &cluster.ca_pem(),
        &cluster.ca_key_pem(),
        "mallory",
    )
    .unwrap();

    for (i, case) in CASES.iter().enumerate() {
        let errors_before = a.totals().frame_errors;
        let client = raw_client(
            &cluster.ca_pem(),
            Some((&mallory.cert_pem, &mallory.key_pem)),
        );
        let conn = client
            .connect(a.local_addr(), "alpha")
            .unwrap()
            .await
            .unwrap();
        let mut urgent = conn.open_uni().await.unwrap();
        urgent.write_all(&[case.urgent_tag]).await.unwrap();
        let mut bulk = conn.open_uni().await.unwrap();
        bulk.write_all(b"B").await.unwrap();

        let mallory_conn = if case.announced {
            let (id, name, dialed) = connected(&mut a_rx).await;
            assert_eq!((name.as_str(), dialed), ("mallory", false), "{}", case.name);
            Some(id)
        } else {
            None
        };
        urgent.write_all(case.payload).await.unwrap();
        if case.finish {
            urgent.finish().unwrap();
        }

        // The client is told why, with the protocol-violation code.
        let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .unwrap_or_else(|_| panic!("{}: connection not closed", case.name));
        match &closed {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, 3u32.into(), "{}", case.name);
                let reason = String::from_utf8_lossy(&close.reason);
                assert!(reason.contains(case.reason), "{}: {reason}", case.name);
            }
            other => panic!("{}: closed with {other:?}", case.name),
        }
        if let Some(id) = mallory_conn {
            let reason = disconnected(&mut a_rx, id).await;
            assert!(reason.contains(case.reason), "{}: {reason}", case.name);
        }
        assert_eq!(a.totals().frame_errors, errors_before + 1, "{}", case.name);
        client.close(0u32.into(), b"");

        // Nothing from mallory ever reached the engine, and beta is unaffected.
        let msg = format!("round {i}");
        b.send(b_to_a, Lane::Urgent, Bytes::from(msg.clone()))
            .unwrap();
        let events = wait_for(&mut a_rx, Duration::from_secs(5), |e| match e {
            TransportEvent::Frame { conn, bytes, .. } => Some((*conn, bytes.to_vec())),
            _ => None,
        })
        .await;
        assert_eq!(events, (a_to_b, msg.into_bytes()), "{}", case.name);
    }
    assert_eq!(a.connections().len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_opens_its_lanes_is_dropped_unannounced() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let mallory = veto_transport::tls::generate_node_cert(
        &cluster.ca_pem(),
        &cluster.ca_key_pem(),
        "mallory",
    )
    .unwrap();
    let client = raw_client(
        &cluster.ca_pem(),
        Some((&mallory.cert_pem, &mallory.key_pem)),
    );
    let conn = client
        .connect(a.local_addr(), "alpha")
        .unwrap()
        .await
        .unwrap();
    // Lane setup is bounded by the handshake timeout (2 s in these tests).
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("a silent peer was kept");
    assert!(
        closed.to_string().contains("lane setup timed out"),
        "{closed}"
    );
    let events = drain(&mut a_rx, Duration::from_millis(100)).await;
    assert!(events.is_empty(), "{events:?}");
    a.shutdown().await;
}

#[tokio::test]
async fn datagrams_arrive_as_datagram_events_and_oversize_ones_are_refused() {
    let cluster = Cluster::new();
    let (a, mut a_rx) = start(&cluster, "alpha").await;
    let (b, mut b_rx) = start(&cluster, "beta").await;
    b.add_peer(a.local_addr());
    let (a_to_b, _, _) = connected(&mut a_rx).await;
    let (b_to_a, _, _) = connected(&mut b_rx).await;

    b.send_datagram(b_to_a, Bytes::from_static(b"copy of a push"))
        .expect("a small datagram goes");
    let got = wait_for(&mut a_rx, Duration::from_secs(5), |e| match e {
        TransportEvent::Datagram { conn, bytes } => Some((*conn, bytes.to_vec())),
        _ => None,
    })
    .await;
    assert_eq!(got, (a_to_b, b"copy of a push".to_vec()));

    // Larger than one packet: refused at once, and the connection stays up.
    let big = Bytes::from(vec![7u8; 4000]);
    assert!(matches!(
        b.send_datagram(b_to_a, big),
        Err(veto_transport::SendError::DatagramTooLarge { len: 4000, .. })
    ));
    b.send(b_to_a, Lane::Urgent, Bytes::from_static(b"still here"))
        .unwrap();
    let got = wait_for(&mut a_rx, Duration::from_secs(5), |e| match e {
        TransportEvent::Frame { bytes, .. } => Some(bytes.to_vec()),
        _ => None,
    })
    .await;
    assert_eq!(got, b"still here");
    a.shutdown().await;
    b.shutdown().await;
}
