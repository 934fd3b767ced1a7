//! The seed corpus of every target: a handful of valid inputs each, checked
//! here by the targets' own invariants. `VETO_FUZZ_WRITE_SEEDS=1 cargo test
//! --test seeds` (in `fuzz/`) writes them to `corpus/<target>/seed-<n>`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use veto_core::{Frontier, Hlc, NodeId, Record, RecordId, Target};
use veto_fuzz::gossip::PROTOCOL_VERSION;
use veto_fuzz::set::{signed_input, AUDIENCE, ISSUER, NOW};
use veto_gossip::proto::{
    encode, encode_frame, ClockSample, FrontierSummary, Hello, Holding, Message, Report,
    ReportState,
};

fn record(origin: u64, seq: u64, target: Target) -> Record {
    Record {
        id: RecordId {
            origin: NodeId::new(origin),
            seq,
        },
        hlc: Hlc::from_unix(Duration::from_secs(1_700_000_000)),
        target,
        expires_at: 1_700_003_600,
        reason: "compromised".into(),
        actor: "ops".into(),
    }
}

/// One message of every type.
fn messages() -> Vec<Message> {
    let mut frontier = Frontier::new();
    frontier.insert_range(NodeId::new(1), 1..=1000);
    frontier.insert_range(NodeId::new(1), 1005..=1010);
    frontier.insert_range(NodeId::new(2), 1..=3);
    let token = Target::Token {
        iss: Some("https://issuer.example".into()),
        jti: "j-1".into(),
    };
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
                    sum: 77,
                },
            )],
            clock: ClockSample {
                sent_at: 1_700_000_000_123_456_789,
                echo: 1_700_000_000_000_000_001,
                held: 4_000_000,
            },
            indirect: vec![NodeId::new(2), NodeId::new(3)],
            expected: vec![(NodeId::new(2), vec![4..=9, 11..=20])],
            reports: vec![
                Report {
                    node: NodeId::new(7),
                    at: 1_700_000_000_123_456_789,
                    state: Some(ReportState {
                        name: "eu-1".into(),
                        region: "eu-west".into(),
                        through: vec![(NodeId::new(1), 1000), (NodeId::new(7), 0)],
                        partial: false,
                    }),
                    digest: 0x1234,
                },
                Report {
                    node: NodeId::new(3),
                    at: 1_700_000_000_000_000_001,
                    state: None,
                    digest: 7,
                },
            ],
            direct: Some(vec![NodeId::new(2), NodeId::new(3)]),
        },
        Message::Push {
            records: vec![
                record(1, 1, token.clone()),
                record(1, 2, Target::opaque_token("opaque-refresh")),
            ],
        },
        Message::Records {
            batch_id: 42,
            records: vec![record(2, 5, token)],
            cleared: vec![(NodeId::new(2), vec![1..=4])],
        },
        Message::Ack { batch_id: 42 },
        Message::Held {
            origin: NodeId::new(1),
            from: 1,
            upto: 2000,
            held: vec![1..=999, 1005..=1010],
        },
        Message::Reports {
            reports: vec![Report {
                node: NodeId::new(2),
                at: 1_700_000_000_500_000_000,
                state: Some(ReportState {
                    name: "ap-1".into(),
                    region: "ap-south".into(),
                    through: vec![(NodeId::new(1), 1010), (NodeId::new(2), 3)],
                    partial: false,
                }),
                digest: 0x1234,
            }],
        },
    ]
}

fn set_claims(events: Value) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "iat": NOW - 10, "jti": "set-1", "events": events,
    })
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "gossip_decode" => messages().iter().map(|m| encode(m).unwrap()).collect(),
        "gossip_frames" => {
            let frames: Vec<Vec<u8>> = messages().iter().map(|m| encode_frame(m).unwrap()).collect();
            let mut all = vec![frames.concat()];
            all.extend(frames);
            all
        }
        "set_events" => {
            let iss_sub = json!({"format": "iss_sub", "iss": "https://idp.example", "sub": "dave"});
            let complex = json!({"format": "complex", "user": iss_sub,
                "session": {"format": "opaque", "id": "session-3"}});
            vec![
                signed_input(&set_claims(json!({
                    veto_api::events::mapping::SESSION_REVOKED: {
                        "subject": {"format": "opaque", "id": "session-9"},
                        "event_timestamp": NOW - 20,
                    }
                }))),
                signed_input(&set_claims(json!({
                    veto_api::events::mapping::CREDENTIAL_CHANGE: {
                        "subject": iss_sub, "change_type": "revoke",
                        "credential_type": "password", "reason_admin": {"en": "leaked"},
                    }
                }))),
                signed_input(&set_claims(json!({
                    veto_api::events::mapping::TOKEN_REVOKED: {
                        "subject": {"format": "jwt_id", "iss": "https://idp.example", "jti": "t-1"},
                    }
                }))),
                signed_input(&set_claims(json!({
                    veto_api::events::mapping::TOKENS_REVOKED: {
                        "subject": {"format": "oauth_client", "client_id": "c-1"},
                    }
                }))),
                signed_input(&set_claims(json!({
                    veto_api::events::mapping::SESSION_REVOKED: {"subject": complex},
                    veto_api::events::mapping::TOKEN_REVOKED: {
                        "subject": {"format": "oauth_token", "token": "opaque-7"},
                    },
                }))),
                b"\x00eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_vec(),
            ]
        }
        "watch_cursor" => ["0123456789abcdef-0", "00000000deadbeef-42", "ffffffffffffffff-18446744073709551615"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        "jwt_decode" => [
            veto_fuzz::jwt_from_parts(b"{\"alg\":\"RS256\",\"kid\":\"k1\"}\0{\"iss\":\"https://idp\",\"sub\":\"dave\",\"jti\":\"j-1\",\"iat\":1700000000,\"exp\":1700003600}"),
            veto_fuzz::jwt_from_parts(b"{\"alg\":\"none\"}\0{\"sid\":\"s-1\",\"client_id\":\"c\"}"),
            "a.b.c".to_owned(),
            "opaque-token".to_owned(),
        ]
        .map(String::into_bytes)
        .to_vec(),
        "jwt_claims" => vec![
            b"{\"alg\":\"RS256\",\"kid\":\"k1\"}\0{\"iss\":\"https://idp\",\"sub\":\"dave\",\"jti\":\"j-1\",\"iat\":1700000000}".to_vec(),
            b"{}\0{\"sub\":\"\\u00e9\",\"exp\":1.5e9}".to_vec(),
            b"{\"client_id\":\"c-1\",\"sid\":\"s\"}".to_vec(),
        ],
        "id_parse" => {
            let id = RecordId {
                origin: NodeId::new(0xab),
                seq: 42,
            };
            let mut value = 7u64.to_le_bytes().to_vec();
            value.extend(9u64.to_le_bytes());
            vec![
                id.origin.to_string().into_bytes(),
                id.to_string().into_bytes(),
                value,
            ]
        }
        "filter_decode" => {
            let id = RecordId {
                origin: NodeId::new(0xab),
                seq: 3,
            };
            let mut full = veto_filter::FilterBuilder::new();
            full.add(id, &Target::Token { iss: Some("https://issuer.example".into()), jti: "j-1".into() }, 1_700_003_600, 1_700_000_000);
            full.add(id, &Target::TokenHash { sha256: [7; 32] }, 1_700_003_600, 1_700_000_000);
            full.add(id, &Target::Session { iss: None, sid: "s-1".into() }, 1_700_003_600, 1_700_000_000);
            full.add(id, &Target::Subject { iss: Some("https://issuer.example".into()), sub: "alice".into(), before: 1_700_000_000 }, 1_700_086_400, 1_700_000_000);
            full.add(id, &Target::Issuer { iss: "https://old.example".into(), before: 1_600_000_000 }, 1_600_086_400, 1_600_000_000);
            let mut keys = veto_filter::FilterBuilder::new();
            for i in 0..50 {
                keys.add(id, &Target::Token { iss: None, jti: format!("j-{i}") }, 1, 1);
            }
            vec![
                full.build("8c1f0e25a3b4d9f7-41").unwrap().encode(),
                keys.build("8c1f0e25a3b4d9f7-1").unwrap().encode(),
                veto_filter::FilterBuilder::new().build("").unwrap().encode(),
            ]
        }
        "tokens_file" => vec![
            format!(
                "{}\n{}",
                veto_api::tokens::tokens_file_entry("soc-bot", veto_api::Roles::of(&[veto_api::Role::Revoke]), "t1"),
                veto_api::tokens::tokens_file_entry(
                    "edge",
                    veto_api::Roles::of(&[veto_api::Role::Read, veto_api::Role::Audit]),
                    "t2"
                )
            )
            .into_bytes(),
            b"[[tokens]]\nname = \"a b\"\nroles = [\"root\"]\nsha256 = \"zz\"\n".to_vec(),
            b"tokens = 3\n".to_vec(),
        ],
        "config_file" => vec![
            include_bytes!("../../deploy/systemd/veto.toml").to_vec(),
            br#"name = "eu-1"
region = "eu-west"
listen = "127.0.0.1:7400"
peers = ["us-1=10.0.0.2:7401"]
log_format = "json"
max_staleness = 2.5
stale_policy = "open"
write_rate = 0
header_timeout = 5

[[transmitters]]
issuer = "https://idp.example"
audience = "veto"
jwks = '{"keys": []}'

[[transmitters]]
issuer = "https://other.example"
audience = "veto"
jwks = { keys = [] }
"#
            .to_vec(),
            b"watch_buffer = 0\ncolour = \"blue\"\nlisten = 7400\n".to_vec(),
            b"[[transmitters]]\nissuer = \"i\"\naudience = \"a\"\n".to_vec(),
            // A quoted key with an escape: named as TOML reads it.
            b"\"bad\\\\key\" = 1\n".to_vec(),
        ],
        other => panic!("no seeds for {other}"),
    }
}

const TARGETS: [&str; 10] = [
    "gossip_decode",
    "gossip_frames",
    "set_events",
    "watch_cursor",
    "jwt_decode",
    "jwt_claims",
    "id_parse",
    "tokens_file",
    "filter_decode",
    "config_file",
];

#[test]
fn seeds_are_valid_inputs_and_hold_the_invariants() {
    let write = std::env::var_os("VETO_FUZZ_WRITE_SEEDS").is_some();
    for target in TARGETS {
        let seeds = seeds(target);
        for (i, seed) in seeds.iter().enumerate() {
            match target {
                "gossip_decode" => {
                    let m = veto_gossip::proto::decode(seed).unwrap();
                    veto_fuzz::gossip::check_message(&m);
                    veto_fuzz::gossip::check_payload(seed);
                }
                "gossip_frames" => assert!(!veto_fuzz::gossip::check_stream(seed).is_empty()),
                "set_events" => {
                    veto_fuzz::set::check_set_input(seed);
                    if seed[0] % 2 == 1 {
                        let (status, stored) = check_signed(seed);
                        assert_eq!(status, 202, "seed {i}");
                        assert!(stored >= 1, "seed {i} stores nothing");
                    }
                }
                "watch_cursor" => {
                    let text = std::str::from_utf8(seed).unwrap();
                    assert!(text.parse::<veto_api::Cursor>().is_ok(), "{text}");
                    veto_fuzz::cursor::check_cursor_text(text);
                }
                "jwt_decode" => veto_fuzz::check_jwt(std::str::from_utf8(seed).unwrap()),
                "jwt_claims" => veto_fuzz::check_jwt(&veto_fuzz::jwt_from_parts(seed)),
                "tokens_file" => {
                    let text = std::str::from_utf8(seed).unwrap();
                    // The first seed is a valid file; the others are refused.
                    assert_eq!(
                        veto_api::tokens::parse_tokens_file(text).is_ok(),
                        i == 0,
                        "seed {i}"
                    );
                    veto_fuzz::tokens::check_tokens_file(text);
                }
                "config_file" => {
                    let text = std::str::from_utf8(seed).unwrap();
                    // The first two seeds are valid files; the others are refused.
                    assert_eq!(veto_config::parse(text).is_ok(), i < 2, "seed {i}");
                    veto_fuzz::config::check_config(text);
                }
                "filter_decode" => {
                    assert!(veto_filter::EdgeFilter::decode(seed).is_ok(), "seed {i}");
                    veto_fuzz::check_filter_decode(seed);
                }
                _ => {
                    if let Ok(text) = std::str::from_utf8(seed) {
                        veto_fuzz::check_id_text(text);
                    }
                }
            }
        }
        if write {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("corpus")
                .join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, seed) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
            }
        }
    }
}

/// Runs a signed seed through the endpoint and returns what it answered.
fn check_signed(seed: &[u8]) -> (u16, usize) {
    let rest = &seed[1..];
    let i = rest.iter().position(|b| *b == 0).unwrap();
    let token = veto_fuzz::set::sign(&rest[..i], &rest[i + 1..]);
    let (status, stored) = veto_fuzz::set::check_set_body(token.into_bytes());
    (status.as_u16(), stored)
}
