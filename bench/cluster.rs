//! Whole-cluster benchmarks on real `veto` processes (release build), real QUIC
//! and the project's fault-injecting relay:
//!
//! - `propagation`: five nodes, every link through a relay adding 50 ms one way;
//!   time from the 201 at the origin until every other node enforces the
//!   revocation, then the same with 1% and with 5% packet loss on every link.
//! - `backlog`: a node joining a peer that holds N records (default 1,000,000):
//!   time to converge, and gossip payload bytes against the records' encoded size.
//! - `idle`: CPU used by connected nodes with nothing to send.
//!
//! Run: `cargo bench --bench cluster -- propagation|backlog|idle` (see
//! bench/RESULTS.md for recorded figures).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin";

fn veto() -> &'static str {
    env!("CARGO_BIN_EXE_veto")
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Node {
    proc: Proc,
    url: String,
    dir: PathBuf,
}

struct Relay {
    _proc: Proc,
    listen: u16,
    control: u16,
}

impl Relay {
    fn start(to: u16, delay_ms: u64, jitter_ms: u64, seed: u64) -> Relay {
        let (listen, control) = (free_udp(), free_tcp());
        let child = Command::new(env!("CARGO_BIN_EXE_veto-relay"))
            .args([
                "--listen",
                &format!("127.0.0.1:{listen}"),
                "--to",
                &format!("127.0.0.1:{to}"),
            ])
            .args([
                "--control",
                &format!("127.0.0.1:{control}"),
                "--seed",
                &seed.to_string(),
            ])
            .args(["--delay", &delay_ms.to_string()])
            .args(["--jitter", &jitter_ms.to_string()])
            .env("RUST_LOG", "error")
            .spawn()
            .unwrap();
        let relay = Relay {
            _proc: Proc(child),
            listen,
            control,
        };
        wait(
            || TcpStream::connect(("127.0.0.1", control)).is_ok(),
            Duration::from_secs(10),
            "relay",
        );
        relay
    }

    fn command(&self, line: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.control)).unwrap();
        writeln!(s, "{line}").unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        reply
    }
}

fn wait(mut f: impl FnMut() -> bool, limit: Duration, what: &str) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn certs(dir: &Path, names: &[String]) {
    let d = dir.display().to_string();
    assert!(Command::new(veto())
        .args(["cert", "ca", "--out", &d])
        .output()
        .unwrap()
        .status
        .success());
    for n in names {
        let ok = Command::new(veto())
            .args(["cert", "node", "--ca-dir", &d, "--name", n, "--out", &d])
            .output()
            .unwrap();
        assert!(ok.status.success());
    }
}

fn start_node(root: &Path, certs: &Path, name: &str, gossip: u16, peers: &[u16]) -> Node {
    let http = free_tcp();
    let dir = root.join(name);
    let c = |f: String| certs.join(f).display().to_string();
    let mut cmd = Command::new(veto());
    cmd.args([
        "serve",
        "--data-dir",
        &dir.display().to_string(),
        "--listen",
        &format!("127.0.0.1:{http}"),
    ])
    .args([
        "--gossip-listen",
        &format!("127.0.0.1:{gossip}"),
        "--name",
        name,
        "--region",
        name,
    ])
    .args([
        "--tls-ca",
        &c("ca.pem".into()),
        "--tls-cert",
        &c(format!("{name}.pem")),
        "--tls-key",
        &c(format!("{name}.key")),
    ])
    .env("VETO_ADMIN_TOKEN", ADMIN)
    .env(
        "RUST_LOG",
        std::env::var("NODE_LOG").unwrap_or_else(|_| "error".into()),
    )
    .stdout(Stdio::null());
    for p in peers {
        cmd.args(["--peer", &format!("127.0.0.1:{p}")]);
    }
    let node = Node {
        proc: Proc(cmd.spawn().unwrap()),
        url: format!("http://127.0.0.1:{http}"),
        dir,
    };
    let client = Client::new();
    wait(
        || {
            client
                .get(format!("{}/readyz", node.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
        Duration::from_secs(60),
        "node ready",
    );
    node
}

/// Prints the node's metric lines that start with any of `prefixes`, each
/// behind `label`.
fn print_metrics(client: &Client, node: &Node, label: &str, prefixes: &[&str]) {
    let text = client
        .get(format!("{}/metrics", node.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for line in text
        .lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
    {
        println!("{label} {line}");
    }
}

fn status(client: &Client, node: &Node) -> Value {
    client
        .get(format!("{}/v1/status", node.url))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn connected_peers(client: &Client, node: &Node) -> usize {
    status(client, node)["peers"].as_array().map_or(0, |p| {
        p.iter().filter(|p| p["state"] == "connected").count()
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or_default()
    );
}

/// Revokes at a rotating origin and polls every other node until all enforce.
fn propagation_round(nodes: &[Node], count: usize, tag: &str) -> Vec<f64> {
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let pollers: Vec<Client> = nodes
        .iter()
        .map(|_| {
            Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap()
        })
        .collect();
    let mut times = Vec::new();
    for i in 0..count {
        let origin = i % nodes.len();
        let jti = format!("{tag}-{i}");
        let r = client
            .post(format!("{}/v1/revocations", nodes[origin].url))
            .bearer_auth(ADMIN)
            .json(&json!({"scope": "token", "jti": jti}))
            .send()
            .unwrap();
        let acked = Instant::now();
        assert_eq!(r.status(), 201);
        let elapsed: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != origin)
                .map(|(j, node)| {
                    let (poller, jti) = (&pollers[j], &jti);
                    s.spawn(move || loop {
                        let v: Value = poller
                            .get(format!("{}/v1/check?jti={jti}", node.url))
                            .send()
                            .unwrap()
                            .json()
                            .unwrap();
                        if v["revoked"] == true {
                            return acked.elapsed().as_secs_f64() * 1e3;
                        }
                        assert!(
                            acked.elapsed() < Duration::from_secs(30),
                            "record {jti} never arrived"
                        );
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        times.push(elapsed.into_iter().fold(0.0, f64::max));
        std::thread::sleep(Duration::from_millis(20));
    }
    times
}

fn propagation() {
    let root = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
    certs(&root.path().join("certs"), &names);
    let gossip: Vec<u16> = names.iter().map(|_| free_udp()).collect();
    let mut relays = Vec::new();
    let mut peers: Vec<Vec<u16>> = vec![Vec::new(); names.len()];
    // Both nodes of a pair list each other (a node accepts a dial-in only
    // from a peer it lists), each through its own relay.
    for (i, dialler) in peers.iter_mut().enumerate() {
        for (j, port) in gossip.iter().enumerate().filter(|(j, _)| *j != i) {
            let relay = Relay::start(*port, 50, 0, (i * 10 + j) as u64);
            dialler.push(relay.listen);
            relays.push(relay);
        }
    }
    let nodes: Vec<Node> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            start_node(
                root.path(),
                &root.path().join("certs"),
                n,
                gossip[i],
                &peers[i],
            )
        })
        .collect();
    let client = Client::new();
    wait(
        || nodes.iter().all(|n| connected_peers(&client, n) == 4),
        Duration::from_secs(60),
        "full mesh",
    );
    let count: usize = std::env::var("COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    println!("\npropagation: 5 nodes, full mesh, every link through a relay adding 50 ms one way, {count} revocations");
    println!("| links | revocations | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    summary(
        "50 ms one way, no loss",
        propagation_round(&nodes, count, "clean"),
    );
    let clean = gossip_counters(&client, &nodes);
    if std::env::var("SHOW_METRICS").is_ok() {
        for node in &nodes {
            print_metrics(
                &client,
                node,
                &node.url,
                &["veto_propagation_seconds", "veto_store_flush"],
            );
        }
    }
    let mut rows = vec![("no loss".to_owned(), clean.clone())];
    let mut before = clean;
    for loss in [0.01, 0.05] {
        for r in &relays {
            r.command(&format!("loss {loss}"));
        }
        let label = format!("{:.0}% loss", loss * 100.0);
        summary(
            &format!("50 ms one way, {label}"),
            propagation_round(&nodes, count, &format!("lossy{loss}")),
        );
        let total = gossip_counters(&client, &nodes);
        rows.push((
            label,
            total.iter().zip(&before).map(|(t, c)| t - c).collect(),
        ));
        before = total;
    }
    println!("\nhow records arrived, summed over the nodes:");
    println!("| links | {} |", COUNTERS.join(" | "));
    println!("|{}", "---|".repeat(COUNTERS.len() + 1));
    for (label, v) in rows {
        let cells: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
}

/// The counters that tell how records travelled: by push or by repair.
const COUNTERS: [&str; 6] = [
    "veto_gossip_records_received_total{kind=\"new\",via=\"push\"}",
    "veto_gossip_records_received_total{kind=\"new\",via=\"echo\"}",
    "veto_gossip_records_received_total{kind=\"new\",via=\"repair\"}",
    "veto_gossip_records_received_total{kind=\"duplicate\",via=\"push\"}",
    "veto_gossip_send_dropped_total",
    "veto_anti_entropy_rounds_total",
];

/// Sums each of [`COUNTERS`] over every node's `/metrics`.
fn gossip_counters(client: &Client, nodes: &[Node]) -> Vec<f64> {
    let mut sums = vec![0.0; COUNTERS.len()];
    for node in nodes {
        let text = client
            .get(format!("{}/metrics", node.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            for (i, counter) in COUNTERS.iter().enumerate() {
                let (base, labels) = counter.split_once('{').unwrap_or((counter, ""));
                let labels_match = labels
                    .trim_end_matches('}')
                    .split(',')
                    .all(|l| name.contains(l));
                if name.split('{').next() == Some(base) && labels_match {
                    sums[i] += value.parse::<f64>().unwrap_or(0.0);
                }
            }
        }
    }
    sums
}

fn backlog() {
    let n: usize = std::env::var("RECORDS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1_000_000);
    let root = tempfile::tempdir().unwrap();
    let names = vec!["holder".to_owned(), "joiner".to_owned()];
    let certs_dir = root.path().join("certs");
    certs(&certs_dir, &names);
    let (g1, g2) = (free_udp(), free_udp());
    let holder = start_node(root.path(), &certs_dir, "holder", g1, &[]);
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let load = Instant::now();
    for start in (0..n).step_by(10_000) {
        let batch: Vec<Value> = (start..(start + 10_000).min(n))
            .map(|i| json!({"scope": "token", "iss": "https://idp.example", "jti": format!("jti-{i:012}")}))
            .collect();
        let r = client
            .post(format!("{}/v1/revocations/batch", holder.url))
            .bearer_auth(ADMIN)
            .json(&batch)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let load_s = load.elapsed().as_secs_f64();
    // With DELAY_MS set, both directions go through relays adding that delay
    // (give or take JITTER_MS, drawn per packet, which reorders them).
    let env_ms = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let link = env_ms("DELAY_MS").map(|delay| {
        let jitter = env_ms("JITTER_MS").unwrap_or(0);
        (
            Relay::start(g1, delay, jitter, 1),
            Relay::start(g2, delay, jitter, 2),
            delay,
            jitter,
        )
    });
    let (to_holder, to_joiner) = link
        .as_ref()
        .map_or((g1, g2), |(h, j, _, _)| (h.listen, j.listen));
    let joiner = start_node(root.path(), &certs_dir, "joiner", g2, &[to_holder]);
    let target = status(&client, &holder)["digest"].clone();
    let started = Instant::now();
    let r = client
        .post(format!("{}/v1/peers", holder.url))
        .bearer_auth(ADMIN)
        .json(&json!({"addr": format!("127.0.0.1:{to_joiner}")}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let show = std::env::var("SHOW_METRICS").is_ok();
    let mut last_print = Instant::now();
    wait(
        || {
            let s = status(&client, &joiner);
            if show && last_print.elapsed() >= Duration::from_millis(500) {
                last_print = Instant::now();
                let p = &s["peers"][0];
                println!(
                    "{:>5.1} s: {} records, cwnd {} lost {}",
                    started.elapsed().as_secs_f64(),
                    s["revocations"],
                    p["cwnd_bytes"],
                    p["lost_packets"]
                );
            }
            s["digest"] == target
        },
        Duration::from_secs(600),
        "joiner converged",
    );
    let converge_s = started.elapsed().as_secs_f64();
    if show {
        for (name, node) in [("holder", &holder), ("joiner", &joiner)] {
            print_metrics(&client, node, name, &["veto_gossip", "veto_store_flush"]);
        }
        if let Some((h, j, _, _)) = &link {
            println!(
                "relay to holder: {}relay to joiner: {}",
                h.command("stats"),
                j.command("stats")
            );
            for node in [&holder, &joiner] {
                println!("{}", status(&client, node)["peers"]);
            }
        }
    }
    let metrics = client
        .get(format!("{}/metrics", holder.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let sent: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("veto_gossip_bytes_total") && l.contains("direction=\"out\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    drop(holder.proc);
    let store = veto_store::Store::open(&holder.dir, veto_store::OpenOptions::default()).unwrap();
    let mut encoded = 0usize;
    let config = bincode::config::standard();
    store
        .for_each_record(|r| {
            encoded += bincode::serde::encode_to_vec(&r, config)
                .map(|v| v.len())
                .unwrap_or(0)
        })
        .unwrap();
    let path = link.as_ref().map_or("loopback".to_owned(), |(_, _, d, j)| {
        format!("relays adding {d} ms ± {j} ms one way")
    });
    println!("\nbacklog: a new node joins a peer holding {n} records over {path} (ingest at the holder: {:.0} records/s durable)", n as f64 / load_s);
    println!("| records | converge s | gossip payload bytes | records' encoded bytes | ratio |\n|---|---|---|---|---|");
    println!(
        "| {n} | {converge_s:.1} | {sent:.0} | {encoded} | {:.3} |",
        sent / encoded as f64
    );
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn idle() {
    let root = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=3).map(|i| format!("idle{i}")).collect();
    let certs_dir = root.path().join("certs");
    certs(&certs_dir, &names);
    let gossip: Vec<u16> = names.iter().map(|_| free_udp()).collect();
    let nodes: Vec<Node> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let others: Vec<u16> = (0..gossip.len())
                .filter(|j| *j != i)
                .map(|j| gossip[j])
                .collect();
            start_node(root.path(), &certs_dir, n, gossip[i], &others)
        })
        .collect();
    let client = Client::new();
    wait(
        || nodes.iter().all(|n| connected_peers(&client, n) == 2),
        Duration::from_secs(60),
        "mesh",
    );
    std::thread::sleep(Duration::from_secs(5));
    let secs = 60;
    let before: Vec<u64> = nodes.iter().map(|n| cpu_ticks(n.proc.0.id())).collect();
    std::thread::sleep(Duration::from_secs(secs));
    let hz = 100.0; // USER_HZ on Linux
    println!("\nidle: 3 connected nodes, nothing to send, {secs} s");
    println!("| node | CPU % of one core |\n|---|---|");
    for (i, n) in nodes.iter().enumerate() {
        let used = (cpu_ticks(n.proc.0.id()) - before[i]) as f64 / hz;
        println!("| {} | {:.2} |", names[i], used / secs as f64 * 100.0);
    }
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let all = which.is_empty();
    let want = |name: &str| all || which.iter().any(|w| w == name);
    println!(
        "machine: {} cores; date: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono_free_date()
    );
    if want("propagation") {
        propagation();
    }
    if want("backlog") {
        backlog();
    }
    if want("idle") {
        idle();
    }
}

fn chrono_free_date() -> String {
    Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
