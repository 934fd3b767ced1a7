//! `veto probe`: canary revocations that measure, for every ordered pair of
//! nodes (and a gateway, when given), how long after a revocation is
//! acknowledged at one node the other refuses the token.
//!
//! This file holds the flags, the nodes' labels and the loop; `round.rs` one
//! round of measurements, `canary.rs` the canary tokens, `export.rs` the
//! Prometheus metrics and `table.rs` the printed table.

mod canary;
mod export;
mod round;
mod table;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use veto_client::{Client, Gateway};

use round::{Node, Pair, GATEWAY};

/// Flags of `veto probe`.
#[derive(clap::Args, Debug)]
pub(crate) struct ProbeArgs {
    /// A node's HTTP API, such as http://us-east.veto.internal:7400; repeat
    /// for every node of the cluster.
    #[arg(long = "node", value_name = "URL", required = true, value_parser = parse_url)]
    pub(crate) nodes: Vec<String>,
    /// A route behind a gateway that asks veto's /v1/auth, such as
    /// http://api.internal/ping: a GET carrying the canary as its bearer
    /// token must pass before the revocation, and is timed until refused.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub(crate) gateway: Option<String>,
    /// Seconds between the starts of two rounds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub(crate) interval: Duration,
    /// Run one round, print its table and exit: non-zero if a pair failed.
    #[arg(long)]
    pub(crate) once: bool,
    /// Serve the probe's Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Seconds a target has to refuse a canary before its pair fails.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub(crate) timeout: Duration,
    /// The admin bearer token of the nodes (the same at each).
    #[arg(long, env = "VETO_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// A file holding the admin bearer token.
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,
}

/// An `http://` or `https://` URL with a host, as veto-client takes it.
fn parse_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("not an http:// or https:// URL".to_owned());
    }
    Ok(text.to_owned())
}

/// A positive number of seconds, fractions allowed.
fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        // Capped at a day: anything longer is a typo, and f64 seconds beyond
        // Duration's range would panic.
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        _ => Err("must be a positive number of seconds, at most 86400".to_owned()),
    }
}

/// The admin token: the flag or `VETO_ADMIN_TOKEN`, else the file.
fn admin_token(args: &ProbeArgs) -> anyhow::Result<String> {
    let token = match (&args.admin_token, &args.admin_token_file) {
        (Some(token), _) => token.trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read admin token file {}", path.display()))?
            .trim()
            .to_owned(),
        (None, None) => bail!(
            "veto probe revokes canaries and needs the admin token: give --admin-token or \
             --admin-token-file, or set VETO_ADMIN_TOKEN"
        ),
    };
    if token.is_empty() {
        bail!("the admin token is empty");
    }
    Ok(token)
}

/// The probe's targets.
struct Probe {
    /// Each node, with the URL it was given.
    nodes: Vec<(String, Node)>,
    gateway: Option<Gateway>,
    timeout: Duration,
}

impl Probe {
    fn new(args: &ProbeArgs, admin: &str) -> anyhow::Result<Probe> {
        let mut nodes: Vec<(String, Node)> = Vec::new();
        for url in &args.nodes {
            if nodes.iter().any(|(u, _)| u == url) {
                bail!("--node {url} is given twice");
            }
            let client = Client::new(url)
                .with_context(|| format!("--node {url}"))?
                .with_admin_token(admin)
                .with_timeout(args.timeout);
            let label = url.clone();
            nodes.push((url.clone(), Node { label, client }));
        }
        let gateway = match &args.gateway {
            Some(url) => Some(
                Gateway::new(url)
                    .with_context(|| format!("--gateway {url}"))?
                    .with_timeout(args.timeout),
            ),
            None => None,
        };
        if nodes.len() < 2 && gateway.is_none() {
            bail!("nothing to measure: give at least two --node, or a --gateway");
        }
        Ok(Probe {
            nodes,
            gateway,
            timeout: args.timeout,
        })
    }

    /// Labels each node by the name its `/v1/status` reports. A node that
    /// does not answer keeps the label it had (its URL until it first
    /// answers), so a node going down keeps its series; a name already taken
    /// (two nodes with one name, or one named like the gateway target) gives
    /// way to the URL, so that pairs never merge.
    async fn relabel(&mut self) {
        let lookups: Vec<_> = self
            .nodes
            .iter()
            .map(|(_, node)| {
                let client = node
                    .client
                    .clone()
                    .with_timeout(self.timeout.min(STATUS_TIMEOUT));
                tokio::spawn(async move { client.status().await.map(|s| s.node.name) })
            })
            .collect();
        let mut taken: Vec<String> = Vec::new();
        if self.gateway.is_some() {
            taken.push(GATEWAY.to_owned());
        }
        for ((url, node), lookup) in self.nodes.iter_mut().zip(lookups) {
            let name = match lookup.await {
                Ok(Ok(name)) if !name.is_empty() => name,
                _ => node.label.clone(),
            };
            node.label = if taken.contains(&name) {
                url.clone()
            } else {
                name
            };
            taken.push(node.label.clone());
        }
    }

    /// One round: labels, then every pair.
    async fn round(&mut self) -> Vec<Pair> {
        self.relabel().await;
        let nodes: Vec<Node> = self.nodes.iter().map(|(_, n)| n.clone()).collect();
        round::run(&nodes, self.gateway.as_ref(), self.timeout).await
    }
}

/// How long a node's status may take when labelling it.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Prints a round's table; a closed stdout does not stop the probe.
fn print(pairs: &[Pair]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(table::render(pairs).as_bytes());
    let _ = out.flush();
}

/// Runs `veto probe`: one round with `--once`, else a round every
/// `--interval` until killed.
pub(crate) async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let admin = admin_token(&args)?;
    let mut probe = Probe::new(&args, &admin)?;
    if let Some(addr) = args.metrics_listen {
        let bound = export::serve(addr).await?;
        eprintln!("veto probe: metrics at http://{bound}/metrics");
    }
    if args.once {
        let pairs = probe.round().await;
        export::record(&pairs);
        print(&pairs);
        let failed = table::failed_pairs(&pairs);
        if !failed.is_empty() {
            bail!(
                "{} of {} pairs failed: {}",
                failed.len(),
                pairs.len(),
                failed.join(", ")
            );
        }
        return Ok(());
    }
    let mut ticker = tokio::time::interval(args.interval);
    // A round longer than the interval (a node down makes its pairs wait the
    // whole timeout) delays the next one rather than starting a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let pairs = probe.round().await;
        export::record(&pairs);
        print(&pairs);
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_must_be_positive() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "-1", "abc", "NaN", "inf", "1e9"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_http() {
        assert!(parse_url("http://127.0.0.1:7400").is_ok());
        for bad in ["127.0.0.1:7400", "ftp://host/", "not a url", "http://"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
