//! `veto revoke --wait` against real processes over real QUIC links slowed
//! by `veto-relay`: a table of who enforces the revocation, exit 0 once
//! every region does, exit 3 at the timeout naming the partitioned region,
//! and bad flags refused (by the node, or before anything is sent); and the
//! same waits and receipts through veto-client.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::regions::regions;
use support::{veto_bin, ADMIN_TOKEN};
use veto_client::{Client, ReceiptView, RevokeRequest, ScopeKind};

fn veto(args: &[&str]) -> Output {
    Command::new(veto_bin())
        .args(args)
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap()
}

/// `veto revoke --node <node> <args>`, the args split on blanks.
fn revoke(node: &str, args: &str) -> Output {
    let mut all = vec!["revoke", "--node", node];
    all.extend(args.split_whitespace());
    veto(&all)
}

/// The record JSON that starts stdout, and the lines after it.
fn record_and_rest(out: &Output) -> (Value, Vec<String>) {
    let mut stream = serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>();
    let record = stream.next().expect("a record").expect("record JSON");
    let rest = String::from_utf8_lossy(&out.stdout[stream.byte_offset()..])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    (record, rest)
}

/// The table's rows (after its header) as their cells, split on blanks:
/// `[region, node, state, ...]`.
fn rows(lines: &[String]) -> Vec<Vec<String>> {
    assert!(
        lines[0].starts_with("REGION") && lines[0].contains("ENFORCED AFTER"),
        "{lines:?}"
    );
    lines[1..]
        .iter()
        .take_while(|l| !l.contains(':'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn pending(receipt: &ReceiptView) -> Vec<&str> {
    receipt
        .nodes
        .iter()
        .filter(|n| !n.enforced())
        .map(|n| n.name.as_str())
        .collect()
}

/// veto-client's waits and receipts, with ap-south cut off from `url`.
fn client_waits_and_reads_receipts(url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let node = Client::new(url).unwrap().with_admin_token(ADMIN_TOKEN);
    rt.block_on(async {
        let batch = [
            RevokeRequest::new(ScopeKind::Token).jti("b-1"),
            RevokeRequest::new(ScopeKind::Session).sid("s-1"),
        ];
        let w = node
            .revoke_batch_wait(&batch, "all", Duration::from_millis(500))
            .await
            .unwrap();
        assert!(!w.met, "{w:?}");
        assert_eq!(w.stored.len(), 2);
        assert_eq!(w.receipt.id, w.stored[0].id);
        assert_eq!(pending(&w.receipt), ["ap"]);

        let one = RevokeRequest::new(ScopeKind::Token).jti("c-1");
        let w = node
            .revoke_wait(&one, "eu-west", Duration::from_secs(5))
            .await
            .unwrap();
        assert!(w.met, "{w:?}");
        assert_eq!(w.stored.jti.as_deref(), Some("c-1"));
        let receipt = node.receipt(&w.stored.id).await.unwrap();
        assert_eq!(receipt.id, w.stored.id);
        assert!(!receipt.complete);
        assert_eq!(pending(&receipt), ["ap"]);

        let e = node.receipt("00000000000000ab-7").await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{e}");
        let never = RevokeRequest::new(ScopeKind::Token).jti("never-2");
        let e = node
            .revoke_wait(&never, "mars", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400), "{e}");
        assert_eq!(e.code(), Some("invalid_request"), "{e}");
    });
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn wait_all_prints_every_region_enforced_and_a_bad_region_stores_nothing() {
    let r = regions(20, 40);
    let out = revoke(
        &r.us.url,
        "--scope token --jti leaked-1 --wait all --timeout 10",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (record, rest) = record_and_rest(&out);
    assert_eq!(record["jti"], "leaked-1");
    // The record as a revoke without --wait prints it: the receipt is the table.
    assert!(record.get("receipt").is_none(), "{record}");
    let id = record["id"].as_str().unwrap();
    let table = rows(&rest);
    let cells: Vec<(&str, &str, &str)> = table
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        cells,
        [
            ("ap-south", "ap", "enforced"),
            ("eu-west", "eu", "enforced"),
            ("us-east", "us", "enforced"),
        ],
        "{rest:?}"
    );
    for row in &table {
        // ENFORCED AFTER is `<ms> ms`, measured from the send.
        let ms: f64 = row[3].parse().unwrap();
        assert!((0.0..10_000.0).contains(&ms), "{row:?}");
        assert_eq!(row[4], "ms", "{row:?}");
    }
    assert_eq!(
        rest.last().unwrap(),
        &format!("complete: 3 of 3 nodes enforce {id}")
    );

    // A region no node serves: the node's 400, nothing stored.
    let out = revoke(&r.us.url, "--scope token --jti never-1 --wait eu-west,mars");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("400 Bad Request"), "{err}");
    assert!(err.contains("unknown region(s) mars"), "{err}");
    assert!(
        err.contains("us-east"),
        "the known regions are named: {err}"
    );
    assert!(out.stdout.is_empty());
    assert!(!r.us.revoked(&[("jti", "never-1")]));

    // A quorum is met before every region may hold it; the summary says so.
    let out = revoke(&r.us.url, "--scope session --sid s-1 --wait quorum");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, rest) = record_and_rest(&out);
    let last = rest.last().unwrap();
    assert!(
        last.starts_with("complete: 3 of 3") || last.starts_with("wait quorum met: "),
        "{last}"
    );
}

#[test]
fn a_partitioned_region_is_named_pending_and_the_command_exits_3_at_the_timeout() {
    let r = regions(5, 5);
    r.to_ap.command("partition on");
    let start = Instant::now();
    let out = revoke(
        &r.us.url,
        "--scope subject --sub mallory --wait all --timeout 2",
    );
    let took = start.elapsed();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(err.contains("wait not met within 2 s"), "{err}");
    assert!(err.contains("pending ap (ap-south)"), "{err}");
    assert!(err.contains("the revocation is stored"), "{err}");
    let (record, rest) = record_and_rest(&out);
    assert_eq!(record["sub"], "mallory");
    let table = rows(&rest);
    assert_eq!(
        table[0][..4],
        ["ap-south", "ap", "pending", "-"],
        "{rest:?}"
    );
    assert_eq!(table[1][..3], ["eu-west", "eu", "enforced"], "{rest:?}");
    assert_eq!(table[2][..3], ["us-east", "us", "enforced"], "{rest:?}");
    // Stored all the same.
    assert!(r.us.revoked(&[("sub", "mallory")]));

    client_waits_and_reads_receipts(&r.us.url);

    // Waiting only for the regions that can answer is met.
    let out = revoke(
        &r.us.url,
        "--scope token --jti near-1 --wait us-east,eu-west --timeout 5",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, rest) = record_and_rest(&out);
    let last = rest.last().unwrap();
    assert!(
        last.starts_with("wait us-east,eu-west met: 2 of 3 nodes enforce")
            && last.ends_with("; pending ap (ap-south)"),
        "{last}"
    );
}

#[test]
fn bad_waits_and_timeouts_are_refused_before_anything_is_sent() {
    // No node listens here: a flag refused locally never gets as far as
    // "cannot reach the node".
    let nowhere = format!("http://127.0.0.1:{}", support::free_port());
    let base = [
        "revoke", "--node", &nowhere, "--scope", "token", "--jti", "x",
    ];
    for (flags, says) in [
        (
            &["--wait", "all", "--timeout", "-1"][..],
            "must be 0 or more",
        ),
        (&["--wait", "all", "--timeout", "61"][..], "over the limit"),
        (&["--wait", "all", "--timeout", "soon"][..], "not a number"),
        (&["--wait", "0"][..], "waits for nothing"),
        (&["--wait", "eu-west,,ap-south"][..], "empty region"),
        (&["--timeout", "5"][..], "--wait"),
    ] {
        let out = veto(&[&base[..], flags].concat());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(!err.contains("cannot reach"), "{flags:?}: {err}");
    }
}
