use std::time::Duration;

use proptest::prelude::*;
use veto_core::{Frontier, Hlc, NodeId, Record, RecordId, Target};

use super::*;

fn record(origin: u64, seq: u64, text: usize) -> Record {
    Record {
        id: RecordId {
            origin: NodeId::new(origin),
            seq,
        },
        hlc: Hlc::from_unix(Duration::from_secs(1_700_000_000)),
        target: Target::Token {
            iss: Some("https://issuer.example".into()),
            jti: "x".repeat(text.max(1)),
        },
        expires_at: 1_700_003_600,
        reason: "compromised".into(),
        actor: "ops".into(),
    }
}

/// A `peer` record, which replicates like any other.
fn peer_record(origin: u64, seq: u64) -> Record {
    Record {
        target: Target::Peer {
            name: Some("c".into()),
            cert_sha256: Some([0x5a; 32]),
        },
        ..record(origin, seq, 1)
    }
}

fn samples() -> Vec<Message> {
    let mut frontier = Frontier::new();
    frontier.insert_range(NodeId::new(1), 1..=1000);
    frontier.insert_range(NodeId::new(1), 1005..=1010);
    frontier.insert_range(NodeId::new(2), 1..=3);
    vec![
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            node: NodeId::new(7),
            name: "eu-1".into(),
            region: "eu-west".into(),
            sent_at: 1_700_000_000_000_000_000,
        }),
        Message::Goodbye {
            reason: "unsupported protocol version 9".into(),
        },
        Message::Frontier {
            summary: FrontierSummary::of(&frontier),
            holdings: vec![(
                NodeId::new(1),
                Holding {
                    count: 1003,
                    sum: u64::MAX - 7,
                },
            )],
            clock: ClockSample {
                sent_at: 1_700_000_000_123_456_789,
                echo: 1_700_000_000_000_000_001,
                held: 4_000_000,
            },
            indirect: vec![NodeId::new(2), NodeId::new(3)],
            expected: vec![(NodeId::new(2), vec![4..=9, 11..=u64::MAX])],
            reports: vec![
                Report {
                    node: NodeId::new(3),
                    at: 1_700_000_000_000_000_000,
                    state: Some(ReportState {
                        name: "eu-west".into(),
                        region: "eu".into(),
                        through: vec![(NodeId::new(2), 7), (NodeId::new(3), 12)],
                        partial: false,
                    }),
                    digest: 0x1234,
                },
                Report {
                    node: NodeId::new(4),
                    at: 5,
                    state: None,
                    digest: 7,
                },
            ],
            direct: Some(vec![NodeId::new(2), NodeId::new(9)]),
        },
        Message::Held {
            origin: NodeId::new(1),
            from: 1,
            upto: 2000,
            held: vec![1..=999, 1005..=1010],
        },
        Message::Push {
            records: vec![record(1, 1, 8), record(1, 2, 8), peer_record(1, 3)],
        },
        Message::Records {
            batch_id: 42,
            records: vec![record(2, 5, 20)],
            cleared: vec![(NodeId::new(2), vec![1..=4, 6..=9])],
        },
        Message::Ack { batch_id: 42 },
        Message::Digest {
            state: [0xa5; 16],
            clock: ClockSample {
                sent_at: 1_700_000_000_123_456_789,
                echo: 0,
                held: 0,
            },
            reports: vec![Report {
                node: NodeId::new(4),
                at: 6,
                state: None,
                digest: 7,
            }],
            direct: None,
        },
    ]
}

#[test]
fn a_digest_is_small_and_its_lists_are_bounded() {
    let digest = |direct: Option<Vec<NodeId>>| Message::Digest {
        state: crate::proto::state_digest(&Frontier::new(), &[]),
        clock: ClockSample::default(),
        reports: Vec::new(),
        direct,
    };
    assert!(encoded_len(&digest(None)) <= 24);
    let many = (1..=MAX_INDIRECT_ORIGINS as u64 + 1)
        .map(NodeId::new)
        .collect();
    let bytes = encode(&digest(Some(many))).unwrap();
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::Invalid {
            kind: "Digest",
            error: Invalid::TooManyOrigins { .. }
        })
    ));
}

#[test]
fn the_state_digest_tells_frontiers_and_holdings_apart() {
    use crate::proto::state_digest;
    let mut a = Frontier::new();
    a.insert_range(NodeId::new(1), 1..=10);
    let mut b = a.clone();
    b.insert_range(NodeId::new(1), 12..=12);
    let held = [(NodeId::new(1), Holding { count: 10, sum: 5 })];
    let other = [(NodeId::new(1), Holding { count: 10, sum: 6 })];
    assert_eq!(state_digest(&a, &held), state_digest(&a.clone(), &held));
    assert_ne!(state_digest(&a, &held), state_digest(&b, &held));
    assert_ne!(state_digest(&a, &held), state_digest(&a, &other));
    assert_ne!(state_digest(&a, &held), state_digest(&a, &[]));
}

#[test]
fn every_message_round_trips() {
    for msg in samples() {
        let bytes = encode(&msg).unwrap();
        assert_eq!(encoded_len(&msg), bytes.len());
        assert_eq!(decode(&bytes).unwrap(), msg);
        let frame = encode_frame(&msg).unwrap();
        let header: [u8; 4] = frame[..4].try_into().unwrap();
        assert_eq!(parse_frame_header(header).unwrap(), bytes.len());
        assert_eq!(&frame[4..], &bytes[..]);
    }
}

#[test]
fn hello_and_goodbye_tags_are_frozen() {
    let hello = encode(&samples()[0]).unwrap();
    let goodbye = encode(&samples()[1]).unwrap();
    assert_eq!(hello[0], 0);
    assert_eq!(hello[1], PROTOCOL_VERSION as u8);
    assert_eq!(goodbye[0], 1);
}

#[test]
fn a_hello_of_another_version_still_decodes() {
    let msg = Message::Hello(Hello {
        version: 9,
        node: NodeId::new(7),
        name: "future".into(),
        region: "r".into(),
        sent_at: 1_700_000_000_000_000_000,
    });
    assert_eq!(decode(&encode(&msg).unwrap()).unwrap(), msg);
}

/// A `Hello` of version 6, which had no `sent_at`, does not decode as this
/// version's, but its version is still read, so that the peer is told it
/// speaks another version rather than that it sent garbage.
#[test]
fn the_version_of_an_older_hello_is_read_even_where_it_does_not_decode() {
    let Message::Hello(mut hello) = samples()[0].clone() else {
        panic!("the first sample is a Hello");
    };
    hello.version = 6;
    let mut bytes = encode(&Message::Hello(hello.clone())).unwrap();
    // `sent_at` is last: a varint of 9 bytes for a time in 2023.
    bytes.truncate(bytes.len() - 9);
    assert!(decode(&bytes).is_err());
    assert_eq!(hello_version(&bytes), Some(6));
    hello.version = PROTOCOL_VERSION;
    assert_eq!(
        hello_version(&encode(&Message::Hello(hello)).unwrap()),
        Some(PROTOCOL_VERSION)
    );
    assert_eq!(hello_version(&encode(&samples()[1]).unwrap()), None);
    assert_eq!(hello_version(&[]), None);
    assert_eq!(hello_version(&[0]), None);
}

#[test]
fn every_truncation_is_an_error() {
    for msg in samples() {
        let bytes = encode(&msg).unwrap();
        for cut in 0..bytes.len() {
            let err = decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::Truncated | DecodeError::Empty | DecodeError::Malformed { .. }
                ),
                "{} cut at {cut}: {err:?}",
                msg.kind()
            );
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&Message::Ack { batch_id: 1 }).unwrap();
    bytes.push(0);
    assert_eq!(
        decode(&bytes).unwrap_err(),
        DecodeError::TrailingBytes { extra: 1 }
    );
}

#[test]
fn oversize_frames_are_refused_before_reading() {
    assert_eq!(
        decode(&vec![0u8; MAX_FRAME_BYTES + 1]).unwrap_err(),
        DecodeError::TooLarge {
            len: MAX_FRAME_BYTES + 1
        }
    );
    assert!(matches!(
        parse_frame_header((MAX_FRAME_BYTES as u32 + 1).to_be_bytes()),
        Err(DecodeError::TooLarge { .. })
    ));
    assert_eq!(parse_frame_header([0; 4]), Err(DecodeError::Empty));
    // 400 records of ~4 KiB each is more than a frame.
    let big = Message::Push {
        records: (1..=400).map(|s| record(1, s, 4000)).collect(),
    };
    assert!(matches!(
        encode(&big),
        Err(EncodeError::TooLarge { kind: "Push", .. })
    ));
}

#[test]
fn a_huge_length_claim_does_not_allocate_or_panic() {
    // Push tag, then a varint claiming u64::MAX records.
    let mut bytes = vec![3u8, 253];
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    let err = decode(&bytes).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::Malformed { .. } | DecodeError::Truncated
    ));
}

#[test]
fn an_unknown_tag_is_named() {
    assert_eq!(
        decode(&[9, 0]).unwrap_err(),
        DecodeError::UnknownMessage { tag: 9 }
    );
    assert_eq!(
        decode(&[250, 0]).unwrap_err(),
        DecodeError::UnknownMessage { tag: 250 }
    );
    // Tags above 250 take a marker byte and a little-endian u16.
    assert_eq!(
        decode(&[251, 0x2c, 0x01]).unwrap_err(),
        DecodeError::UnknownMessage { tag: 300 }
    );
}

#[test]
fn source_hints_in_a_frontier_are_bounded_and_checked() {
    let frontier = |indirect: Vec<NodeId>, expected: OriginRanges| Message::Frontier {
        summary: FrontierSummary::default(),
        holdings: Vec::new(),
        clock: ClockSample::default(),
        indirect,
        expected,
        reports: Vec::new(),
        direct: None,
    };
    let origins = (1..=MAX_INDIRECT_ORIGINS as u64 + 1)
        .map(NodeId::new)
        .collect();
    assert!(matches!(
        decode(&encode(&frontier(origins, Vec::new())).unwrap()),
        Err(DecodeError::Invalid {
            error: Invalid::TooManyOrigins { .. },
            ..
        })
    ));
    let ranges = (1..=MAX_EXPECTED_RANGES as u64 + 1)
        .map(|s| 2 * s..=2 * s)
        .collect();
    assert!(matches!(
        decode(&encode(&frontier(Vec::new(), vec![(NodeId::new(1), ranges)])).unwrap()),
        Err(DecodeError::Invalid {
            error: Invalid::TooManyRanges { .. },
            ..
        })
    ));
    let zero = vec![(NodeId::new(1), vec![0..=3])];
    assert!(matches!(
        decode(&encode(&frontier(Vec::new(), zero)).unwrap()),
        Err(DecodeError::Invalid {
            error: Invalid::BadRange { .. },
            ..
        })
    ));
}

#[test]
fn limits_are_checked_on_decode() {
    let zero = Message::Frontier {
        summary: FrontierSummary {
            origins: vec![(NodeId::new(1), vec![0..=5])],
            truncated: false,
        },
        holdings: Vec::new(),
        clock: ClockSample::default(),
        indirect: Vec::new(),
        expected: Vec::new(),
        reports: Vec::new(),
        direct: None,
    };
    assert!(matches!(
        decode(&encode(&zero).unwrap()),
        Err(DecodeError::Invalid {
            kind: "Frontier",
            error: Invalid::BadRange { .. }
        })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = Message::Records {
        batch_id: 1,
        records: vec![],
        cleared: vec![(NodeId::new(1), vec![9..=3])],
    };
    assert!(matches!(
        decode(&encode(&backwards).unwrap()),
        Err(DecodeError::Invalid { .. })
    ));
    let many = Message::Push {
        records: (1..=MAX_RECORDS_PER_MESSAGE as u64 + 1)
            .map(|s| record(1, s, 1))
            .collect(),
    };
    assert!(matches!(
        decode(&encode(&many).unwrap()),
        Err(DecodeError::Invalid {
            error: Invalid::TooManyRecords { .. },
            ..
        })
    ));
    let seq0 = Message::Push {
        records: vec![record(1, 0, 1)],
    };
    assert!(matches!(
        decode(&encode(&seq0).unwrap()),
        Err(DecodeError::Invalid {
            error: Invalid::ZeroSeq(_),
            ..
        })
    ));
    let fat = Message::Push {
        records: vec![record(1, 1, MAX_RECORD_TEXT_BYTES + 1)],
    };
    assert!(matches!(
        decode(&encode(&fat).unwrap()),
        Err(DecodeError::Invalid {
            error: Invalid::RecordTooLarge { .. },
            ..
        })
    ));
}

#[test]
fn a_truncated_summary_never_claims_more_than_the_frontier() {
    let mut frontier = Frontier::new();
    for origin in 1..=5u64 {
        for k in 0..100u64 {
            // Ranges k*10+1 ..= k*10+5: a hundred gaps per origin.
            frontier.insert_range(NodeId::new(origin), k * 10 + 1..=k * 10 + 5);
        }
    }
    let summary = FrontierSummary::with_limit(&frontier, 42);
    assert!(summary.truncated);
    assert_eq!(summary.range_count(), 42);
    // Every origin keeps its lowest range.
    assert_eq!(summary.origins.len(), 5);
    for (_, ranges) in &summary.origins {
        assert_eq!(ranges[0], 1..=5);
    }
    let back = summary.to_frontier();
    assert_eq!(back.missing_in(&frontier), vec![]);
    assert!(frontier.count() > back.count());

    let whole = FrontierSummary::of(&frontier);
    assert!(!whole.truncated);
    assert_eq!(whole.to_frontier(), frontier);

    let tiny = FrontierSummary::with_limit(&frontier, 3);
    assert_eq!(tiny.origins.len(), 3);
    assert_eq!(tiny.to_frontier().missing_in(&frontier), vec![]);
    assert_eq!(FrontierSummary::with_limit(&frontier, 0).range_count(), 0);
}

proptest! {
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(which in 0usize..6, pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = encode(&samples()[which]).unwrap();
        let i = pos % bytes.len();
        bytes[i] = byte;
        if let Ok(msg) = decode(&bytes) {
            // Whatever decodes is within the limits.
            prop_assert!(msg.validate().is_ok());
        }
    }
}

/// A `Held` must describe a window of seqs it stays inside, in order: one
/// that does not is refused on decode, before the engine sees it.
#[test]
fn a_malformed_held_is_refused() {
    let held = |from: u64, upto: u64, held: Vec<std::ops::RangeInclusive<u64>>| Message::Held {
        origin: NodeId::new(1),
        from,
        upto,
        held,
    };
    #[allow(clippy::reversed_empty_ranges)]
    let bad = [
        held(0, 10, vec![]),
        held(11, 10, vec![]),
        held(5, 10, vec![4..=6]),
        held(5, 10, vec![6..=11]),
        held(1, 10, vec![6..=7, 2..=3]),
        held(1, 10, vec![3..=3, 3..=4]),
        held(1, 10, vec![7..=6]),
        held(
            1,
            u64::MAX,
            (1..=MAX_HELD_RANGES as u64 + 1)
                .map(|s| 2 * s..=2 * s)
                .collect(),
        ),
    ];
    for msg in bad {
        let bytes = encode(&msg).unwrap();
        assert!(
            matches!(
                decode(&bytes),
                Err(DecodeError::Invalid { kind: "Held", .. })
            ),
            "{msg:?}"
        );
    }
    let good = held(1, 10, vec![1..=3, 5..=10]);
    assert_eq!(decode(&encode(&good).unwrap()).unwrap(), good);
}
