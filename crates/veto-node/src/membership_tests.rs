//! The membership rules, one by one and together.

use veto_core::{Hlc, NodeId, Record, RecordId, Revocation, Target};

use super::*;

const SHA_C: [u8; 32] = [0xcc; 32];
const SHA_C2: [u8; 32] = [0xc2; 32];
const SHA_B: [u8; 32] = [0xbb; 32];

fn cert<'a>(name: &'a str, sha256: &'a [u8; 32]) -> PeerCert<'a> {
    PeerCert { name, sha256 }
}

fn peer_record(seq: u64, name: Option<&str>, sha: Option<[u8; 32]>) -> Record {
    Revocation {
        target: Target::Peer {
            name: name.map(str::to_owned),
            cert_sha256: sha,
        },
        expires_at: u64::MAX,
        reason: "key leaked".into(),
        actor: "ops".into(),
    }
    .into_record(
        RecordId {
            origin: NodeId::new(9),
            seq,
        },
        Hlc(seq),
    )
}

fn revoked(records: &[&Record]) -> RevokedPeers {
    let mut r = RevokedPeers::default();
    for record in records {
        assert!(r.insert(record.id, &record.target));
    }
    r
}

const DIAL_C: Side<'static> = Side::Dialed {
    addr: "10.0.0.3:7401",
};

#[test]
fn a_removed_name_is_refused_whichever_side_dials_until_added_again() {
    let none = RevokedPeers::default();
    let mut m = Membership::default();
    m.list("10.0.0.3:7401", Some("eu-west"));
    let eu = cert("eu-west", &SHA_C);
    assert_eq!(m.admit(&none, &eu, Side::Accepted), Ok(()));
    assert!(m.remove("eu-west"));
    assert!(!m.remove("eu-west"));
    let removed = Err(Refusal::Removed {
        name: "eu-west".into(),
    });
    assert_eq!(m.admit(&none, &eu, Side::Accepted), removed);
    assert_eq!(m.admit(&none, &eu, DIAL_C), removed);
    assert_eq!(m.refusal(&none, &eu), removed.clone().err());
    assert!(m
        .listing("10.0.0.3:7401")
        .is_some_and(|l| l.refused.is_some()));
    let stored = Membership::decode(&m.encode());
    assert_eq!(stored.removed().collect::<Vec<_>>(), ["eu-west"]);
    assert!(m.add("eu-west"));
    assert!(m
        .listing("10.0.0.3:7401")
        .is_some_and(|l| l.refused.is_none()));
    assert_eq!(m.admit(&none, &eu, Side::Accepted), Ok(()));
    assert!(!m.remove(""), "an empty name is never a certificate's");
}

#[test]
fn a_peer_record_refuses_the_certificate_by_name_or_fingerprint_on_both_sides() {
    let mut m = Membership::default();
    m.list("10.0.0.3:7401", None);
    m.list("10.0.0.2:7401", Some("b"));
    let by_name = peer_record(1, Some("c"), None);
    let by_sha = peer_record(2, None, Some(SHA_C));
    let r = revoked(&[&by_name]);
    for side in [DIAL_C, Side::Accepted] {
        assert_eq!(
            m.admit(&r, &cert("c", &SHA_C2), side),
            Err(Refusal::Revoked {
                name: "c".into(),
                record: by_name.id
            })
        );
    }
    // By fingerprint: only that certificate; the same name with a new one is
    // a member again.
    let r = revoked(&[&by_sha]);
    let refused = m.admit(&r, &cert("c", &SHA_C), DIAL_C);
    assert_eq!(refused.map_err(|e| e.reason()), Err("revoked"));
    assert_eq!(m.admit(&r, &cert("c", &SHA_C2), DIAL_C), Ok(()));
    assert_eq!(m.admit(&r, &cert("c", &SHA_C2), Side::Accepted), Ok(()));
    // A node that never talked to c, and does not list it, refuses it for the
    // record before anything else.
    let stranger = Membership::default();
    assert!(matches!(
        stranger.refusal(&r, &cert("c", &SHA_C)),
        Some(Refusal::Revoked { .. })
    ));
    // Either key of a record with both refuses.
    let both = peer_record(3, Some("c"), Some(SHA_B));
    let r = revoked(&[&both]);
    assert!(m.refusal(&r, &cert("c", &SHA_C2)).is_some());
    assert!(m.refusal(&r, &cert("x", &SHA_B)).is_some());
    assert!(m.refusal(&r, &cert("b", &SHA_C2)).is_none());
}

#[test]
fn a_refusal_lasts_while_any_record_makes_it() {
    let first = peer_record(1, Some("c"), Some(SHA_C));
    let second = peer_record(2, Some("c"), None);
    let mut r = revoked(&[&first, &second]);
    assert_eq!(r.len(), 2);
    let c = cert("c", &SHA_C2);
    r.remove(&first);
    assert_eq!(r.revokes(&c), Some(second.id));
    assert_eq!(r.revokes(&cert("x", &SHA_C)), None);
    r.remove(&second);
    assert!(r.is_empty());
    assert_eq!(r.revokes(&c), None);
    // Other scopes are not peer records.
    let token = Target::Token {
        iss: None,
        jti: "c".into(),
    };
    assert!(!r.insert(first.id, &token));
    assert!(r.is_empty());
}

#[test]
fn only_listed_names_may_dial_in() {
    let none = RevokedPeers::default();
    let mut m = Membership::default();
    let b = cert("b", &SHA_B);
    assert_eq!(
        m.admit(&none, &b, Side::Accepted),
        Err(Refusal::NotListed { name: "b".into() })
    );
    // Listed by name: admitted before any dial.
    m.list("10.0.0.2:7401", Some("b"));
    assert_eq!(m.admit(&none, &b, Side::Accepted), Ok(()));
    assert_eq!(
        m.unlist("10.0.0.2:7401").map(|l| l.given),
        Some(Some("b".into()))
    );
    assert!(m.admit(&none, &b, Side::Accepted).is_err());
    // A dial to an address that is no longer listed proves nothing.
    assert!(m
        .admit(
            &none,
            &b,
            Side::Dialed {
                addr: "10.0.0.2:7401"
            }
        )
        .is_err());
    assert!(!m.lists("b"));
}

#[test]
fn a_dial_proves_the_name_at_its_address_even_when_the_other_side_refuses_it() {
    let none = RevokedPeers::default();
    let mut m = Membership::default();
    m.list("10.0.0.3:7401", None);
    let c = cert("c", &SHA_C);
    // Both start at once: c's dial arrives first and is refused...
    assert!(m.admit(&none, &c, Side::Accepted).is_err());
    // ...then this node's dial proves c at its address (whatever c then
    // does with it), and c's next dial-in is admitted.
    assert_eq!(m.admit(&none, &c, DIAL_C), Ok(()));
    assert_eq!(
        m.listing("10.0.0.3:7401").and_then(|l| l.proven.as_deref()),
        Some("c")
    );
    assert_eq!(m.admit(&none, &c, Side::Accepted), Ok(()));
    // Another node answers there now: c is no longer proven.
    assert_eq!(m.admit(&none, &cert("d", &SHA_B), DIAL_C), Ok(()));
    assert!(m.admit(&none, &c, Side::Accepted).is_err());
}

#[test]
fn a_certificate_cannot_stand_for_the_name_an_address_was_listed_under() {
    let none = RevokedPeers::default();
    let mut m = Membership::default();
    m.list("10.0.0.3:7401", Some("c"));
    // b answers at c's address: refused, and b is not thereby a member.
    let refused = m.admit(&none, &cert("b", &SHA_B), DIAL_C);
    assert_eq!(
        refused,
        Err(Refusal::NameMismatch {
            addr: "10.0.0.3:7401".into(),
            listed: "c".into(),
            proven: "b".into(),
        })
    );
    assert_eq!(
        m.listing("10.0.0.3:7401").and_then(|l| l.refused.clone()),
        refused.err()
    );
    assert!(m.admit(&none, &cert("b", &SHA_B), Side::Accepted).is_err());
    assert!(!m.lists("b"));
    // c itself is admitted there, and its success clears the refusal.
    assert_eq!(m.admit(&none, &cert("c", &SHA_C), DIAL_C), Ok(()));
    assert!(m
        .listing("10.0.0.3:7401")
        .is_some_and(|l| l.refused.is_none()));
}
