use veto_core::{Check, NodeId, RecordId, Target};

use super::*;

fn tok(iss: Option<&str>, jti: &str) -> Target {
    Target::Token {
        iss: iss.map(str::to_owned),
        jti: jti.to_owned(),
    }
}

fn id(seq: u64) -> RecordId {
    RecordId {
        origin: NodeId::new(0xab),
        seq,
    }
}

fn add(b: &mut FilterBuilder, target: &Target, expires_at: u64) {
    b.add(id(expires_at), target, expires_at, 5);
}

fn sample() -> EdgeFilter {
    let mut b = FilterBuilder::new();
    add(&mut b, &tok(Some("i1"), "j1"), 100);
    add(&mut b, &tok(None, "j-any"), 100);
    add(&mut b, &Target::TokenHash { sha256: [7; 32] }, 100);
    add(
        &mut b,
        &Target::Session {
            iss: Some("i1".into()),
            sid: "s1".into(),
        },
        100,
    );
    add(
        &mut b,
        &Target::Key {
            iss: None,
            kid: "k1".into(),
        },
        100,
    );
    for before in [50, 80] {
        add(
            &mut b,
            &Target::Subject {
                iss: Some("i1".into()),
                sub: "alice".into(),
                before,
            },
            before + 10,
        );
    }
    add(
        &mut b,
        &Target::Client {
            iss: None,
            client_id: "c1".into(),
            before: 60,
        },
        70,
    );
    add(
        &mut b,
        &Target::Issuer {
            iss: "i2".into(),
            before: 40,
        },
        50,
    );
    b.build("abc-7").expect("build")
}

fn check<'a>(iss: Option<&'a str>) -> Check<'a> {
    Check {
        iss,
        ..Check::default()
    }
}

#[test]
fn answers_like_the_records() {
    let f = sample();
    let i1 = Some("i1");
    let jti = |j| Check {
        jti: Some(j),
        ..check(i1)
    };
    assert_eq!(f.check(&jti("j1")), Verdict::Maybe);
    assert_eq!(f.check(&jti("j-any")), Verdict::Maybe);
    assert_eq!(f.check(&jti("clean")), Verdict::Clean);
    // Another issuer's j1 is not revoked; any issuer's j-any is.
    let other = |j| Check {
        jti: Some(j),
        ..check(Some("i9"))
    };
    assert_eq!(f.check(&other("j1")), Verdict::Clean);
    assert_eq!(f.check(&other("j-any")), Verdict::Maybe);
    // Without iss, a jti cannot be ruled out.
    let no_iss = Check {
        jti: Some("clean"),
        ..check(None)
    };
    assert_eq!(f.check(&no_iss), Verdict::Maybe);
    let sha = Check {
        token_sha256: Some([7; 32]),
        ..check(None)
    };
    assert_eq!(f.check(&sha), Verdict::Maybe);
    let sid = Check {
        sid: Some("s1"),
        ..check(i1)
    };
    assert_eq!(f.check(&sid), Verdict::Maybe);
    let kid = Check {
        kid: Some("k1"),
        ..check(Some("i5"))
    };
    assert_eq!(f.check(&kid), Verdict::Maybe);
    // Cutoffs: the highest per key, exact, with the node's iat rule.
    let sub = |iat| Check {
        sub: Some("alice"),
        iat,
        ..check(i1)
    };
    assert!(
        matches!(f.check(&sub(Some(79))), Verdict::Revoked(c) if c.before == 80 && c.id == id(90) && c.revoked_at == 5)
    );
    assert_eq!(f.check(&sub(Some(80))), Verdict::Clean);
    assert!(matches!(f.check(&sub(None)), Verdict::Revoked(_)));
    let sub_other = Check {
        sub: Some("alice"),
        iat: Some(1),
        ..check(Some("i9"))
    };
    assert_eq!(f.check(&sub_other), Verdict::Clean);
    let client = Check {
        client_id: Some("c1"),
        iat: Some(59),
        ..check(Some("i9"))
    };
    assert!(matches!(f.check(&client), Verdict::Revoked(c) if c.kind == CutoffKind::Client));
    let issuer = Check {
        iat: Some(39),
        ..check(Some("i2"))
    };
    assert!(matches!(f.check(&issuer), Verdict::Revoked(c) if c.kind == CutoffKind::Issuer));
    assert_eq!(f.cutoffs().len(), 3);
    assert_eq!(f.key_count(), 5);
}

#[test]
fn round_trip() {
    let f = sample();
    let bytes = f.encode();
    let g = EdgeFilter::decode(&bytes).expect("decode");
    assert_eq!(g.cursor(), "abc-7");
    assert_eq!(g.cutoffs(), f.cutoffs());
    assert_eq!(g.key_count(), f.key_count());
    assert_eq!(g.encode(), bytes);
    let jti = Check {
        iss: Some("i1"),
        jti: Some("j1"),
        ..Check::default()
    };
    assert_eq!(g.check(&jti), Verdict::Maybe);
}

#[test]
fn empty_and_tiny_filters_round_trip() {
    let empty = FilterBuilder::new().build("").expect("build");
    let g = EdgeFilter::decode(&empty.encode()).expect("decode");
    assert_eq!(g.check(&check(Some("i"))), Verdict::Clean);
    let mut b = FilterBuilder::new();
    add(&mut b, &tok(Some("i"), "only"), 1);
    // The same key twice, as a record replayed by two origins.
    add(&mut b, &tok(Some("i"), "only"), 1);
    let g = EdgeFilter::decode(&b.build("c").expect("build").encode()).expect("decode");
    let c = Check {
        iss: Some("i"),
        jti: Some("only"),
        ..Check::default()
    };
    assert_eq!(g.check(&c), Verdict::Maybe);
}

#[test]
fn no_false_negatives_and_few_false_positives() {
    let mut b = FilterBuilder::new();
    for i in 0..20_000 {
        add(&mut b, &tok(Some("iss"), &format!("jti-{i}")), 1);
    }
    let f = EdgeFilter::decode(&b.build("c").expect("build").encode()).expect("decode");
    let probe = |j: &str| {
        f.check(&Check {
            iss: Some("iss"),
            jti: Some(j),
            ..Check::default()
        })
    };
    for i in 0..20_000 {
        assert_eq!(probe(&format!("jti-{i}")), Verdict::Maybe);
    }
    let fp = (0..100_000)
        .filter(|i| probe(&format!("other-{i}")) == Verdict::Maybe)
        .count();
    // Two probes per check at about 0.0015% each: expect about 3.
    assert!(fp < 30, "{fp} false positives in 100,000");
}

/// Re-seals a damaged body so that a test reaches the check after the CRC.
fn reseal(mut body: Vec<u8>) -> Vec<u8> {
    body.truncate(body.len() - 4);
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

#[test]
fn refuses_every_bad_input() {
    let good = sample().encode();
    let err = |b: &[u8]| EdgeFilter::decode(b).expect_err("must refuse");
    assert!(matches!(err(b""), DecodeError::Truncated { .. }));
    assert!(matches!(err(b"VFL"), DecodeError::Truncated { .. }));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(err(&bad), DecodeError::BadMagic(_)));
    let mut bad = good.clone();
    bad[4] = 2;
    assert_eq!(err(&bad), DecodeError::UnsupportedVersion(2));
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert!(matches!(err(&bad), DecodeError::BadChecksum { .. }));
    // Every truncation is refused.
    for n in 0..good.len() {
        assert!(EdgeFilter::decode(&good[..n]).is_err(), "prefix {n}");
    }
    // Trailing bytes: inside the checksum, and after it.
    let mut long = good.clone();
    long.insert(long.len() - 4, 0);
    assert_eq!(err(&reseal(long)), DecodeError::TrailingBytes(1));
    let mut after = good.clone();
    after.push(0);
    assert!(matches!(err(&after), DecodeError::BadChecksum { .. }));
    let mut bad = good.clone();
    bad[6] = 0x80;
    assert_eq!(err(&reseal(bad)), DecodeError::UnknownFlags(0x80));
    // Counts larger than the body.
    let mut bad = good.clone();
    bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        err(&reseal(bad)),
        DecodeError::CountTooLarge { what: "cutoff", .. }
    ));
    let mut bad = good.clone();
    bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        err(&reseal(bad)),
        DecodeError::CountTooLarge {
            what: "fingerprint",
            ..
        }
    ));
    // A cursor length past the end.
    let mut bad = good.clone();
    bad[24..26].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(err(&reseal(bad)), DecodeError::Truncated { .. }));
    // A segment length that would index past the fingerprints.
    let seg = 24 + 2 + "abc-7".len() + 8;
    let mut bad = good.clone();
    bad[seg..seg + 4].copy_from_slice(&(1u32 << 17).to_le_bytes());
    assert!(matches!(err(&reseal(bad)), DecodeError::BadFilter(_)));
    let mut bad = good.clone();
    bad[seg + 8..seg + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(err(&reseal(bad)), DecodeError::BadFilter(_)));
    // A bad cutoff kind: the first cutoff follows the fingerprints.
    let n_fps = u32::from_le_bytes([good[20], good[21], good[22], good[23]]) as usize;
    let first = seg + 12 + 2 * n_fps;
    let mut bad = good.clone();
    bad[first] = 9;
    assert_eq!(err(&reseal(bad)), DecodeError::BadField("cutoff kind"));
    let mut bad = good;
    bad[first + 1] = 2;
    assert_eq!(
        err(&reseal(bad)),
        DecodeError::BadField("cutoff issuer flag")
    );
}

#[test]
fn errors_read_clearly() {
    let e = DecodeError::UnsupportedVersion(9).to_string();
    assert!(e.contains("version 9"), "{e}");
    let e = EdgeFilter::decode(b"VFLT\x01\x00")
        .expect_err("short")
        .to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn too_long_strings_are_refused_at_build() {
    let long = "x".repeat(70_000);
    assert!(matches!(
        FilterBuilder::new().build(&long),
        Err(BuildError::TooLong(..))
    ));
}
