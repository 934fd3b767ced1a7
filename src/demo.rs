//! `veto demo`: a throwaway three-region cluster on this machine that shows a
//! revocation travelling.
//!
//! It makes a CA and node certificates in a temporary directory, starts three
//! `veto serve` children (us-east, eu-west, ap-south) on loopback, and by
//! default routes each inter-region link through an in-process relay (the code of `veto-relay`)
//! that adds a realistic one-way delay, so the printed times look like a real
//! deployment's rather than loopback's. Ctrl-C stops everything and removes
//! the directory.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::process::{Child, Command};
use veto_client::{Claims, Client, RevokeRequest, ScopeKind};

use crate::relay::{Faults, Relay, RelayConfig};

/// Flags of `veto demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Connect the regions directly on loopback instead of through relays that
    /// add inter-region delay.
    #[arg(long)]
    pub(crate) loopback: bool,
    /// Start, revoke, print the timings and exit instead of running until Ctrl-C.
    #[arg(long)]
    pub(crate) once: bool,
}

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// The issuer of the demo's token.
const ISSUER: &str = "https://idp.example";

/// Approximate one-way delays between the demo's regions, in milliseconds: half
/// of typical public-cloud round-trip times (us-east-1 to eu-west-1 ~75 ms,
/// to ap-south-1 ~190 ms; eu-west-1 to ap-south-1 ~120 ms).
const ONE_WAY_MS: [(usize, usize, u64); 3] = [(0, 1, 38), (0, 2, 95), (1, 2, 60)];

struct DemoNode {
    region: &'static str,
    http: String,
    api: Client,
    child: Child,
}

fn free_udp() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn free_tcp() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the demo.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("veto-demo-")
        .tempdir()
        .context("cannot make a temp dir")?;
    let certs = dir.path().join("certs");
    veto_transport::tls::write_ca(&certs, false)?;
    for region in REGIONS {
        veto_transport::tls::write_node(&certs, region, &certs, false)?;
    }
    let admin = hex::encode(rand::random::<[u8; 16]>());
    let gossip: Vec<u16> = REGIONS
        .iter()
        .map(|_| free_udp())
        .collect::<anyhow::Result<_>>()?;

    // Both regions of a link list each other (a node accepts a dial-in only
    // from a peer it lists), each through its own relay unless --loopback, so
    // relays are the link's only paths, with the same delay either way.
    let mut peers: Vec<Vec<SocketAddr>> = vec![Vec::new(); REGIONS.len()];
    let mut relays = Vec::new();
    for (a, b, ms) in ONE_WAY_MS {
        for (from, to) in [(a, b), (b, a)] {
            let target = SocketAddr::from(([127, 0, 0, 1], gossip[to]));
            if args.loopback {
                peers[from].push(target);
                continue;
            }
            let config = RelayConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                to: target,
                control: None,
                seed: Some(from as u64 * 10 + to as u64),
                max_queue: 100_000,
                max_clients: 16,
                idle_secs: 3600,
                faults: Faults {
                    delay_ms: ms,
                    ..Faults::default()
                },
            };
            let relay = Relay::bind(config).await.context("cannot start a relay")?;
            peers[from].push(relay.local_addr()?);
            relays.push(tokio::spawn(relay.serve()));
        }
    }

    let exe = std::env::current_exe().context("cannot find the veto executable")?;
    let mut nodes = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        let http = free_tcp()?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join(region))
            .args(["--listen", &format!("127.0.0.1:{http}")])
            .args(["--gossip-listen", &format!("127.0.0.1:{}", gossip[i])])
            .args(["--name", region, "--region", region])
            .args(tls_flags(&certs, region))
            .env("VETO_ADMIN_TOKEN", &admin)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for p in &peers[i] {
            cmd.args(["--peer", &p.to_string()]);
        }
        let child = cmd.spawn().context("cannot start a node")?;
        let http = format!("http://127.0.0.1:{http}");
        let api = Client::new(&http)?
            .with_admin_token(admin.as_str())
            .with_timeout(Duration::from_secs(5));
        nodes.push(DemoNode {
            region,
            http,
            api,
            child,
        });
    }

    let result = demonstrate(&nodes, args.loopback).await;
    if result.is_ok() && !args.once {
        println!("\nThe cluster keeps running. Try:\n");
        let (a, b) = (&nodes[0].http, &nodes[2].http);
        println!("  export VETO_ADMIN_TOKEN={admin}");
        println!("  curl -s -X POST {a}/v1/revocations -H \"Authorization: Bearer $VETO_ADMIN_TOKEN\" \\");
        println!("       -H 'content-type: application/json' -d '{{\"scope\":\"session\",\"sid\":\"s-42\"}}'");
        println!("  curl -s '{b}/v1/check?sid=s-42'");
        println!("  curl -s {b}/v1/status");
        println!("  cargo run --release -- peers list --node {a}");
        println!(
            "\nCtrl-C stops the cluster and removes {}.",
            dir.path().display()
        );
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
    }
    for mut node in nodes {
        let _ = node.child.kill().await;
    }
    for relay in relays {
        relay.abort();
    }
    result
}

fn tls_flags(certs: &Path, name: &str) -> Vec<String> {
    let path = |f: String| certs.join(f).display().to_string();
    vec![
        "--tls-ca".into(),
        path("ca.pem".into()),
        "--tls-cert".into(),
        path(format!("{name}.pem")),
        "--tls-key".into(),
        path(format!("{name}.key")),
    ]
}

/// Whether the node answers its status with both other regions connected.
async fn connected(node: &DemoNode) -> bool {
    node.api.status().await.is_ok_and(|s| {
        s.peers.iter().filter(|p| p.state == "connected").count() == REGIONS.len() - 1
    })
}

async fn demonstrate(nodes: &[DemoNode], loopback: bool) -> anyhow::Result<()> {
    println!("Starting a three-region veto cluster on this machine...");
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in nodes {
        loop {
            if connected(node).await {
                break;
            }
            if Instant::now() > deadline {
                bail!("the demo cluster did not connect within 60 s (is UDP on loopback blocked?)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("  {:<9} {}", node.region, node.http);
    }
    if !loopback {
        println!("Inter-region links run through relays adding one-way delays of 38 ms (us-east/eu-west),");
        println!(
            "95 ms (us-east/ap-south) and 60 ms (eu-west/ap-south), like public-cloud regions."
        );
    }
    let jti = format!("demo-{}", hex::encode(rand::random::<[u8; 4]>()));
    let origin = &nodes[0];
    println!("\nRevoking token jti={jti} at {}...", origin.region);
    let revocation = RevokeRequest::new(ScopeKind::Token)
        .iss(ISSUER)
        .jti(jti.as_str())
        .reason("demo");
    origin
        .api
        .revoke(&revocation)
        .await
        .context("revoke failed")?;
    let acked = Instant::now();
    let token = Claims {
        iss: Some(ISSUER.to_owned()),
        jti: Some(jti),
        ..Claims::default()
    };
    let mut pending: Vec<&DemoNode> = nodes[1..].iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for node in pending {
            if node.api.check(&token).await.is_ok_and(|hit| hit.is_some()) {
                println!(
                    "  enforced at {:<9} {:>6.1} ms after the 201 at {}",
                    node.region,
                    acked.elapsed().as_secs_f64() * 1e3,
                    origin.region
                );
            } else {
                still.push(node);
            }
        }
        pending = still;
        if acked.elapsed() > Duration::from_secs(30) {
            bail!("the revocation did not reach every region within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}
