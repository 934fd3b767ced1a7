//! `veto revoke --wait`: reading `--wait` and `--timeout`, and reporting the
//! receipt the node answered with, one row per node and a summary line.
//!
//! The node and this machine have different clocks, so "enforced after" is
//! measured from the moment this command sent the revoke, by the enforcing
//! node's clock, and clamped at 0: it says how long enforcement took as
//! well as clocks allow, never a negative time.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use veto_client::{ReceiptNode, ReceiptView, RecordView, Waited};
use veto_core::receipt::Wait;

/// How long `--wait` waits without `--timeout`: the node's own default.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exit code when the wait was not met in time. Not 1 (the revoke
/// failed, nothing may be stored) nor 2 (usage): the revocation is stored,
/// only not yet known to be enforced everywhere asked.
pub(crate) const EXIT_WAIT_NOT_MET: u8 = 3;

/// `--wait`: `all`, `quorum`, a count or regions, as the node reads it. The
/// text is sent as given; the node alone knows which regions exist.
pub(crate) fn parse_wait(text: &str) -> Result<String, String> {
    Wait::parse(text).map_err(|e| e.0)?;
    Ok(text.trim().to_owned())
}

/// `--timeout`: seconds from 0 to 60, fractions allowed.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    veto_core::receipt::parse_timeout(text)
        .map(Duration::from_secs_f64)
        .map_err(|e| e.0)
}

/// Now, in Unix seconds with a fraction, as receipts carry time.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The wait was not met before the timeout; the revocation is stored.
#[derive(Debug)]
pub(crate) struct WaitNotMet(String);

impl fmt::Display for WaitNotMet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WaitNotMet {}

/// Prints the receipt's table and summary; a wait not met is a
/// [`WaitNotMet`] error carrying the summary.
pub(crate) fn report(
    waited: &Waited<RecordView>,
    wait: &str,
    timeout: Duration,
    sent_at: f64,
    now: f64,
) -> anyhow::Result<()> {
    print!("{}", render(&waited.receipt, sent_at, now));
    if !waited.met {
        return Err(WaitNotMet(not_met(&waited.receipt, timeout)).into());
    }
    println!("{}", met(&waited.receipt, wait));
    Ok(())
}

/// `N of M nodes enforce <id>`.
fn count(receipt: &ReceiptView) -> String {
    let enforced = receipt.nodes.iter().filter(|n| n.enforced()).count();
    let of = receipt.nodes.len();
    let nodes = if of == 1 { "node" } else { "nodes" };
    format!("{enforced} of {of} {nodes} enforce {}", receipt.id)
}

/// The pending nodes, as `name (region)`, in table order.
fn pending(receipt: &ReceiptView) -> Vec<String> {
    sorted(receipt)
        .into_iter()
        .filter(|n| !n.enforced())
        .map(|n| format!("{} ({})", n.name, n.region))
        .collect()
}

/// The summary of a wait that was met.
fn met(receipt: &ReceiptView, wait: &str) -> String {
    if receipt.complete {
        return format!("complete: {}", count(receipt));
    }
    // A quorum, a count or some regions may be met with nodes still pending.
    format!(
        "wait {wait} met: {}; pending {}",
        count(receipt),
        pending(receipt).join(", ")
    )
}

/// The summary of a wait the timeout cut short.
fn not_met(receipt: &ReceiptView, timeout: Duration) -> String {
    let secs = timeout.as_secs_f64();
    let pending = pending(receipt);
    // A count larger than the cluster is not met with no node pending.
    let who = if pending.is_empty() {
        String::new()
    } else {
        format!("pending {}; ", pending.join(", "))
    };
    format!(
        "wait not met within {secs} s: {who}{} (the revocation is stored)",
        count(receipt)
    )
}

/// The nodes by region, then name, so that a region's nodes stay together.
fn sorted(receipt: &ReceiptView) -> Vec<&ReceiptNode> {
    let mut nodes: Vec<&ReceiptNode> = receipt.nodes.iter().collect();
    nodes.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
    nodes
}

/// Milliseconds from `sent_at` to `enforced_at`, clamped at 0.
fn enforced_after(node: &ReceiptNode, sent_at: f64) -> String {
    match node.enforced_at {
        Some(at) if node.enforced() => {
            format!("{:.0} ms", ((at - sent_at) * 1000.0).max(0.0))
        }
        _ => "-".to_owned(),
    }
}

/// How long ago, in the unit that reads best.
fn ago(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 1.0 {
        format!("{:.0} ms ago", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.1} s ago")
    } else if secs < 3600.0 {
        format!("{:.0} min ago", (secs / 60.0).floor())
    } else {
        format!("{:.0} h ago", (secs / 3600.0).floor())
    }
}

/// The receipt as a table, one row per node, columns aligned, ending in a
/// newline.
pub(crate) fn render(receipt: &ReceiptView, sent_at: f64, now: f64) -> String {
    const HEADER: [&str; 5] = ["REGION", "NODE", "STATE", "ENFORCED AFTER", "LAST HEARD"];
    let rows: Vec<[String; 5]> = sorted(receipt)
        .into_iter()
        .map(|n| {
            [
                n.region.clone(),
                n.name.clone(),
                n.state.clone(),
                enforced_after(n, sent_at),
                n.last_heard
                    .map_or_else(|| "-".to_owned(), |t| ago(now - t)),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
        }
        // The last column is not padded: no trailing blanks.
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, region: &str, enforced_at: Option<f64>, last_heard: f64) -> ReceiptNode {
        ReceiptNode {
            name: name.into(),
            region: region.into(),
            state: if enforced_at.is_some() {
                "enforced"
            } else {
                "pending"
            }
            .into(),
            enforced_at,
            last_heard: Some(last_heard),
        }
    }

    fn receipt(nodes: Vec<ReceiptNode>) -> ReceiptView {
        ReceiptView {
            id: "00000000000000ab-7".into(),
            complete: nodes.iter().all(ReceiptNode::enforced),
            nodes,
        }
    }

    #[test]
    fn rows_are_sorted_by_region_aligned_and_timed_from_the_send() {
        let sent = 1_700_000_000.0;
        let r = receipt(vec![
            node("us", "us-east", Some(sent + 0.004), sent + 0.1),
            node("ap", "ap-south", None, sent - 2.5),
            // A clock behind this machine's: clamped, never negative.
            node("eu", "eu-west", Some(sent - 0.3), sent + 0.2),
        ]);
        let table = render(&r, sent, sent + 0.3);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "REGION    NODE  STATE     ENFORCED AFTER  LAST HEARD",
                "ap-south  ap    pending   -               2.8 s ago",
                "eu-west   eu    enforced  0 ms            100 ms ago",
                "us-east   us    enforced  4 ms            200 ms ago",
            ]
        );
        assert!(table.ends_with('\n'));
    }

    #[test]
    fn unknown_times_are_dashes_and_long_ones_read_in_minutes() {
        let mut n = node("ap", "ap-south", None, 0.0);
        n.last_heard = None;
        let table = render(&receipt(vec![n]), 100.0, 100.0);
        assert_eq!(
            table.lines().nth(1),
            Some("ap-south  ap    pending  -               -")
        );
        assert_eq!(ago(-1.0), "0 ms ago");
        assert_eq!(ago(150.0), "2 min ago");
        assert_eq!(ago(7300.0), "2 h ago");
    }

    #[test]
    fn summaries_name_the_pending_nodes() {
        let all = receipt(vec![
            node("us", "us-east", Some(1.0), 1.0),
            node("eu", "eu-west", Some(1.0), 1.0),
        ]);
        assert_eq!(
            met(&all, "all"),
            "complete: 2 of 2 nodes enforce 00000000000000ab-7"
        );
        let part = receipt(vec![
            node("us", "us-east", Some(1.0), 1.0),
            node("eu", "eu-west", Some(1.0), 1.0),
            node("ap", "ap-south", None, 1.0),
        ]);
        assert_eq!(
            met(&part, "quorum"),
            "wait quorum met: 2 of 3 nodes enforce 00000000000000ab-7; pending ap (ap-south)"
        );
        assert_eq!(
            not_met(&part, Duration::from_secs(2)),
            "wait not met within 2 s: pending ap (ap-south); 2 of 3 nodes enforce \
             00000000000000ab-7 (the revocation is stored)"
        );
        assert_eq!(
            not_met(&all, Duration::from_millis(500)),
            "wait not met within 0.5 s: 2 of 2 nodes enforce 00000000000000ab-7 \
             (the revocation is stored)"
        );
    }

    #[test]
    fn flags_are_checked_as_the_node_checks_them() {
        assert_eq!(parse_wait(" quorum ").unwrap(), "quorum");
        assert_eq!(parse_wait("eu-west,ap-south").unwrap(), "eu-west,ap-south");
        for bad in ["", "0", "eu-west,,ap-south"] {
            assert!(parse_wait(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_timeout("2.5").unwrap(), Duration::from_millis(2500));
        for bad in ["-1", "61", "soon", "NaN"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
    }
}
