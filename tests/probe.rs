//! `veto probe` against a real three-node cluster over QUIC with real
//! certificates: every ordered pair measured, failures named when a node is
//! down, Prometheus metrics of a running probe, and a real nginx as the
//! gateway target.

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::mesh::{wait_connected, Mesh};
use support::{
    free_port, nginx_bin, require_gateway, veto_bin, Nginx, Upstream, Veto, ADMIN_TOKEN,
};

const NAMES: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// A three-node full mesh, every node connected to both others.
fn cluster() -> (Mesh, Vec<Veto>) {
    let mesh = Mesh::new(&NAMES);
    let nodes: Vec<Veto> = (0..NAMES.len()).map(|i| mesh.start(i)).collect();
    wait_connected(&nodes.iter().collect::<Vec<_>>(), NAMES.len() - 1);
    (mesh, nodes)
}

/// `--node URL` for each node.
fn node_flags(nodes: &[&Veto]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|n| ["--node".to_owned(), n.url.clone()])
        .collect()
}

/// Runs `veto probe ARGS` to its end, with the admin token in the environment.
fn probe(args: &[String]) -> Output {
    Command::new(veto_bin())
        .arg("probe")
        .args(args)
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run veto probe")
}

/// One row of the table: from, to, and the seconds or `FAILED` with why.
#[derive(Debug)]
struct Row {
    from: String,
    to: String,
    seconds: Option<f64>,
    rest: String,
}

/// The rows of the table printed on stdout (after its header).
fn rows(stdout: &str) -> Vec<Row> {
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("FROM") && header.contains("SECONDS"),
        "no table header: {stdout}"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let from = words.next().unwrap_or_default().to_owned();
            let to = words.next().unwrap_or_default().to_owned();
            let rest: Vec<&str> = words.collect();
            Row {
                from,
                to,
                seconds: rest.first().and_then(|w| w.parse().ok()),
                rest: rest.join(" "),
            }
        })
        .collect()
}

fn ordered_pairs(names: &[&str]) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for a in names {
        for b in names {
            if a != b {
                pairs.insert((a.to_string(), b.to_string()));
            }
        }
    }
    pairs
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_round_measures_every_ordered_pair() {
    let (_mesh, nodes) = cluster();
    let mut args = node_flags(&nodes.iter().collect::<Vec<_>>());
    args.push("--once".into());
    let started = Instant::now();
    let out = probe(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "probe failed:\n{stdout}\n{stderr}");
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 6, "one row per ordered pair:\n{stdout}");
    for row in &rows {
        let secs = row
            .seconds
            .unwrap_or_else(|| panic!("{} -> {} has no time: {}", row.from, row.to, row.rest));
        assert!(
            (0.0..10.0).contains(&secs),
            "{} -> {}: {secs} s",
            row.from,
            row.to
        );
    }
    let seen: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.from.clone(), r.to.clone()))
        .collect();
    assert_eq!(seen, ordered_pairs(&NAMES), "labelled by node name");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a loopback round is quick"
    );

    // The canaries are in the audit trail, under the probe's issuer and actor.
    let audit = nodes[0].admin_get("/v1/revocations?limit=100");
    let audit: serde_json::Value = audit.json().expect("audit JSON");
    let canaries: Vec<&serde_json::Value> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["iss"] == "veto-probe")
        .collect();
    assert_eq!(canaries.len(), 3, "one canary per node: {audit}");
    for c in canaries {
        // Written with the admin token: a token named `probe` in the tokens
        // file would be the actor itself.
        assert_eq!(c["actor"], "admin", "{c}");
        assert_eq!(c["on_behalf_of"], "probe", "{c}");
        assert_eq!(c["reason"], "veto probe canary", "{c}");
    }
}

#[test]
fn a_stopped_node_fails_its_pairs_by_name() {
    let (_mesh, mut nodes) = cluster();
    nodes[2].kill9();
    let dead = nodes[2].url.clone();
    let mut args = node_flags(&nodes.iter().collect::<Vec<_>>());
    args.extend(["--once", "--timeout", "2"].map(String::from));
    let out = probe(&args);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success(),
        "a pair failed, so the probe fails:\n{stdout}\n{stderr}"
    );
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 6, "every pair still has a row:\n{stdout}");
    for row in &rows {
        // A node that never answered is labelled by its URL.
        let involves_dead = row.from == dead || row.to == dead;
        if involves_dead {
            assert!(
                row.rest.starts_with("FAILED"),
                "{} -> {} cannot succeed: {}",
                row.from,
                row.to,
                row.rest
            );
        } else {
            assert!(
                row.seconds.is_some(),
                "{} -> {} should still be measured: {}",
                row.from,
                row.to,
                row.rest
            );
        }
    }
    let to_dead = rows.iter().find(|r| r.to == dead).expect("a pair to it");
    assert!(
        to_dead.rest.contains("not enforced within 2 s"),
        "{}",
        to_dead.rest
    );
    let from_dead = rows
        .iter()
        .find(|r| r.from == dead)
        .expect("a pair from it");
    assert!(from_dead.rest.contains("revoke at"), "{}", from_dead.rest);
    assert!(stderr.contains("4 of 6 pairs failed"), "{stderr}");
    for pair in [
        format!("us-east -> {dead}"),
        format!("eu-west -> {dead}"),
        format!("{dead} -> us-east"),
        format!("{dead} -> eu-west"),
    ] {
        assert!(stderr.contains(&pair), "{pair} named in: {stderr}");
    }
}

/// A `veto probe` running in the background, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_probe_exports_enforcement_times_per_pair() {
    let (_mesh, nodes) = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).expect("write token");
    let port = free_port();
    let mut args = node_flags(&nodes.iter().collect::<Vec<_>>());
    args.extend(
        [
            "--interval",
            "1",
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
            "--admin-token-file",
            &token_file.display().to_string(),
        ]
        .map(String::from),
    );
    let mut running = Running(
        Command::new(veto_bin())
            .arg("probe")
            .args(&args)
            .env_remove("VETO_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn veto probe"),
    );
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let wanted: Vec<String> = ordered_pairs(&NAMES)
        .into_iter()
        .map(|(from, to)| {
            format!("veto_probe_enforce_seconds_count{{from=\"{from}\",to=\"{to}\"}}")
        })
        .collect();
    let started = Instant::now();
    let metrics = loop {
        if let Some(status) = running.0.try_wait().expect("probe status") {
            panic!("the probe exited with {status}");
        }
        let scraped = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        // Two rounds: the loop goes on after the first.
        let counts: Vec<Option<f64>> = wanted.iter().map(|w| sample(&scraped, w)).collect();
        if counts.iter().all(|c| c.is_some_and(|n| n >= 2.0)) {
            break scraped;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no samples for every pair after 20 s:\n{scraped}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains("# TYPE veto_probe_enforce_seconds histogram"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "veto_probe_enforce_seconds_bucket{from=\"us-east\",to=\"eu-west\",le=\"0.1\"}"
        ),
        "{metrics}"
    );
    for (from, to) in ordered_pairs(&NAMES) {
        let failures = format!("veto_probe_failures_total{{from=\"{from}\",to=\"{to}\"}}");
        assert_eq!(sample(&metrics, &failures), Some(0.0), "{failures}");
    }
    assert!(sample(&metrics, "veto_probe_rounds_total").is_some_and(|n| n >= 2.0));
    drop(running);
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn a_gateway_in_front_of_a_node_is_measured_too() {
    let Some(bin) = require_gateway("nginx", nginx_bin()) else {
        return;
    };
    let (_mesh, nodes) = cluster();
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = Upstream::start();
    let nginx = Nginx::start(
        &bin,
        &dir.path().join("nginx"),
        nodes[1].port(),
        upstream.port,
    );
    let mut args = node_flags(&nodes.iter().collect::<Vec<_>>());
    args.extend([
        "--once".to_owned(),
        "--gateway".to_owned(),
        nginx.url("/api/probe"),
    ]);
    let out = probe(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "probe failed:\n{stdout}\n{stderr}");
    let rows = rows(&stdout);
    assert_eq!(
        rows.len(),
        9,
        "six node pairs and three to the gateway:\n{stdout}"
    );
    for name in NAMES {
        let row = rows
            .iter()
            .find(|r| r.from == name && r.to == "gateway")
            .unwrap_or_else(|| panic!("no {name} -> gateway row:\n{stdout}"));
        assert!(row.seconds.is_some(), "{name} -> gateway: {}", row.rest);
    }
    // Each canary went through to the upstream before its revocation (and
    // may again while the revocation travels to the node nginx asks).
    assert!(upstream.hits() >= 3, "one pass-through per canary at least");
}

#[test]
fn a_gateway_that_refuses_every_canary_fails_its_pairs() {
    let (_mesh, nodes) = cluster();
    // A route that never answers 2xx (a node's unknown path answers 404)
    // stands for a gateway that refuses the canary whatever veto says, such
    // as one that checks signatures: its pairs must fail, not look instant.
    let mut args = node_flags(&nodes.iter().collect::<Vec<_>>());
    args.extend([
        "--once".to_owned(),
        "--gateway".to_owned(),
        format!("{}/no-such-route", nodes[0].url),
    ]);
    let out = probe(&args);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 9, "{stdout}");
    for row in &rows {
        if row.to == "gateway" {
            assert!(
                row.rest
                    .contains("refused the canary before it was revoked"),
                "{}",
                row.rest
            );
        } else {
            assert!(
                row.seconds.is_some(),
                "{} -> {}: {}",
                row.from,
                row.to,
                row.rest
            );
        }
    }
    assert!(stderr.contains("3 of 9 pairs failed"), "{stderr}");
}
