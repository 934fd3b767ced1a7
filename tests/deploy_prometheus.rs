//! The Prometheus rules and the Grafana board in `deploy/`, against real
//! programs: promtool checks the rules and runs their unit tests, and a real
//! Prometheus scrapes a real veto cluster and a real `veto probe` measuring
//! it, loads the rules, and answers every expression of the board and of the
//! rules with data (so no panel or rule points at a metric the node or the
//! probe does not export), and raises the alerts the cluster's faults call for.
//!
//! Skipped with a message when promtool or prometheus is not installed, unless
//! `VETO_REQUIRE_GATEWAYS=1` (then it fails): see `scripts/install-test-deps.sh`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{
    eventually, find_executable, free_port, free_udp_port, make_certs, now, replace_in_config,
    require_gateway, tls_args, veto_bin, Veto, ADMIN_TOKEN,
};

/// Metrics a node exports only once a rare event happened, which this test
/// cannot bring about from outside: a backlog batch whose acknowledgement
/// is lost while the connection stays up (the connection's idle timeout is
/// shorter than the acknowledgement timeout). Their expressions must still
/// parse and evaluate.
const EVENT_ONLY: &[&str] = &["veto_gossip_batch_timeouts_total"];

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// `VETO_<NAME>_BIN`, else `name` on PATH or in sbin.
fn program(name: &str) -> Option<PathBuf> {
    let var = format!("VETO_{}_BIN", name.to_ascii_uppercase());
    match std::env::var_os(var) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => find_executable(name),
    }
}

/// Runs `bin args`, asserting success; returns stdout and stderr.
fn run_ok(bin: &Path, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        bin.display()
    );
    text
}

#[test]
fn promtool_checks_the_rules_and_the_example_config() {
    let Some(promtool) = require_gateway("promtool", program("promtool")) else {
        return;
    };
    let dir = deploy("prometheus");
    let out = run_ok(&promtool, &["check", "rules", "rules.yml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(&promtool, &["check", "config", "prometheus.yml"], &dir);
    assert!(out.contains("is valid prometheus config file"), "{out}");
}

#[test]
fn promtool_unit_tests_pass_and_cover_every_alert() {
    let Some(promtool) = require_gateway("promtool", program("promtool")) else {
        return;
    };
    let dir = deploy("prometheus");
    let out = run_ok(&promtool, &["test", "rules", "rules_test.yml"], &dir);
    assert!(out.contains("SUCCESS"), "{out}");

    let rules = std::fs::read_to_string(dir.join("rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("rules_test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 8, "alerts in rules.yml: {alerts:?}");
    for alert in &alerts {
        // A test that expects it to fire, not only one that expects silence.
        let firing = tests
            .split("- alertname: ")
            .any(|case| case.starts_with(&format!("{alert}\n")) && case.contains("exp_labels:"));
        assert!(firing, "rules_test.yml has no case where {alert} fires");
    }
    let records = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "));
    for record in records {
        assert!(
            tests.contains(&format!("expr: {record}\n"))
                || tests.contains(&format!("expr: {record}{{")),
            "rules_test.yml does not test the recording rule {record}"
        );
    }
}

/// A real Prometheus on a free loopback port, with its data in `dir`.
struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::blocking::Client,
}

impl Prometheus {
    /// Runs `deploy/prometheus/prometheus.yml` with a one-second scrape and
    /// evaluation interval, the rules beside it, `targets` as the nodes and
    /// `probe` as the canary probe.
    fn start(bin: &Path, dir: &Path, targets: &[String], probe: &str) -> Prometheus {
        let example = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).unwrap();
        let conf = replace_in_config(&example, "scrape_interval: 15s", "scrape_interval: 1s");
        let conf = replace_in_config(&conf, "evaluation_interval: 15s", "evaluation_interval: 1s");
        let rules = deploy("prometheus/rules.yml").display().to_string();
        let conf = replace_in_config(&conf, "- rules.yml", &format!("- {rules}"));
        let listed: String = targets
            .iter()
            .map(|t| format!("\n          - {t}"))
            .collect();
        let conf = replace_in_config(
            &conf,
            "\n          - us-east.veto.internal:7400\n          - eu-west.veto.internal:7400\n          - ap-south.veto.internal:7400",
            &listed,
        );
        let conf = replace_in_config(
            &conf,
            "\n          - probe.veto.internal:7409",
            &format!("\n          - {probe}"),
        );
        std::fs::write(dir.join("prometheus.yml"), conf).unwrap();
        let port = free_port();
        let mut child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn prometheus");
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("prometheus exited with {status}");
            }
            let ready = http.get(format!("{url}/-/ready")).send();
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "prometheus not ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Prometheus { child, url, http }
    }

    fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .unwrap();
        r.json().unwrap()
    }

    /// The result vector of an instant query, or the error Prometheus gave.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v = self.api("query", &[("query", expr)]);
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Active alerts (pending or firing) as (name, instance, state).
    fn alerts(&self) -> Vec<(String, String, String)> {
        let v = self.api("alerts", &[]);
        v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let s = |x: &Value| x.as_str().unwrap_or_default().to_owned();
                (
                    s(&a["labels"]["alertname"]),
                    s(&a["labels"]["instance"]),
                    s(&a["state"]),
                )
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `veto probe`, killed when dropped.
struct Probe(Child);

impl Probe {
    /// Probes `nodes` every second, serving its metrics on `metrics`; a pair
    /// fails after 5 s (a node down fails its pairs within a round).
    fn start(nodes: &[&Veto], metrics: &str) -> Probe {
        let mut cmd = Command::new(veto_bin());
        cmd.arg("probe");
        for n in nodes {
            cmd.args(["--node", &n.url]);
        }
        let child = cmd
            .args([
                "--interval",
                "1",
                "--timeout",
                "5",
                "--metrics-listen",
                metrics,
            ])
            .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn veto probe");
        Probe(child)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every `expr` of every panel of the board, nested rows included.
fn board_expressions(board: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("every target has an expr");
                out.push((p["title"].as_str().unwrap().to_owned(), expr.to_owned()));
            }
            if let Some(inner) = p["panels"].as_array() {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(board["panels"].as_array().unwrap(), &mut out);
    out
}

/// The board's expression with its variables set as Grafana would for "All".
fn as_grafana_sends(expr: &str) -> String {
    let e = expr
        .replace("$__rate_interval", "30s")
        .replace("$instance", ".*");
    assert!(!e.contains('$'), "unknown variable in {expr:?}");
    e
}

/// An alert's expression without its final comparison with a number: what
/// is left must have data in a healthy cluster, whether the alert holds or not.
fn without_threshold(expr: &str) -> String {
    let e = expr.trim_end();
    let digits = e.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    assert!(
        digits.len() < e.len(),
        "no threshold at the end of {expr:?}"
    );
    let rest = digits.trim_end();
    for op in ["==", "!=", ">=", "<=", ">", "<"] {
        if let Some(inner) = rest.strip_suffix(op) {
            return inner.trim_end().to_owned();
        }
    }
    panic!("no comparison at the end of {expr:?}")
}

#[test]
fn prometheus_answers_every_board_and_rule_expression_with_data() {
    let Some(bin) = require_gateway("prometheus", program("prometheus")) else {
        return;
    };
    let board: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/veto.json")).unwrap())
            .expect("veto.json is JSON");
    let exprs = board_expressions(&board);
    assert!(exprs.len() >= 20, "the board has {} queries", exprs.len());

    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["us-east", "eu-west", "ap-south"]);
    let root = tempfile::tempdir().unwrap();
    let (pa, pb, pc, dead) = (
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
        free_udp_port(),
    );
    let node_args = |name: &str, port: u16, peer: u16, extra: &[&str]| {
        let mut a = tls_args(certs.path(), name, port, name);
        a.extend(["--peer".into(), format!("127.0.0.1:{peer}")]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    // us-east collects garbage every second with no grace; it starts alone,
    // so its first passes pause (its clock is unconfirmed), and it makes
    // records before eu-west is up, which eu-west then repairs.
    let gc = ["--gc-interval", "1", "--gc-grace", "0"];
    let a = Veto::start_with(&root.path().join("a"), &node_args("us-east", pa, pb, &gc));
    for i in 0..3 {
        a.revoke(json!({"scope": "token", "iss": "https://idp", "jti": format!("early-{i}")}));
    }
    let mut b = Veto::start_with(&root.path().join("b"), &node_args("eu-west", pb, pa, &[]));
    eventually(Duration::from_secs(30), "peers connected", || {
        a.get_json("/v1/status")["peers"][0]["state"] == "connected"
            && b.get_json("/v1/status")["peers"][0]["state"] == "connected"
    });
    // Pushed both ways, so each side sees propagation latency; one record
    // expires at once, for garbage collection.
    for i in 0..5 {
        a.revoke(json!({"scope": "token", "iss": "https://idp", "jti": format!("a-{i}")}));
        b.revoke(json!({"scope": "session", "iss": "https://idp", "sid": format!("b-{i}")}));
    }
    a.revoke(
        json!({"scope": "token", "iss": "https://idp", "jti": "short", "expires_at": now() + 1}),
    );
    eventually(Duration::from_secs(30), "replicated", || {
        a.digest() == b.digest()
    });
    // Lookups of every kind, and some client errors.
    assert!(a.revoked(&[("iss", "https://idp"), ("jti", "a-1")]));
    assert!(!b.revoked(&[("iss", "https://idp"), ("jti", "clean")]));
    assert_eq!(a.get("/v1/auth").status(), 401);
    assert_eq!(a.post_json("/v1/revocations", &json!({})).status(), 400);
    // A revocation that waits until both nodes enforce it.
    let r = a.post_json(
        "/v1/revocations?wait=all&timeout=10",
        &json!({"scope": "token", "iss": "https://idp", "jti": "waited"}),
    );
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    // The canary probe measures the two healthy nodes.
    let probe_addr = format!("127.0.0.1:{}", free_port());
    let probe = Probe::start(&[&a, &b], &probe_addr);

    // ap-south: a node whose disk is "full" (it wants a petabyte free), with
    // a peer that never answers. Its first write halts writes.
    let c = Veto::start_with(
        &root.path().join("c"),
        &node_args(
            "ap-south",
            pc,
            dead,
            &["--min-free-mb", "1000000000", "--gc-interval", "1"],
        ),
    );
    let r = c.post_json(
        "/v1/revocations",
        &json!({"scope": "token", "iss": "https://idp", "jti": "x"}),
    );
    assert_eq!(r.status(), 503, "{}", r.text().unwrap());
    assert_eq!(c.get("/readyz").status(), 503);

    let pdir = tempfile::tempdir().unwrap();
    let targets: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|n| n.url.trim_start_matches("http://").to_owned())
        .collect();
    let prom = Prometheus::start(&bin, pdir.path(), &targets, &probe_addr);
    eventually(
        Duration::from_secs(30),
        "three nodes and the probe scraped",
        || {
            prom.query(r#"up{job="veto"} == 1"#)
                .is_ok_and(|r| r.len() == 3)
                && prom
                    .query(r#"up{job="veto-probe"} == 1"#)
                    .is_ok_and(|r| r.len() == 1)
        },
    );
    // ap-south keeps refusing writes while Prometheus watches (a rate needs
    // the counter to move), which gives enough samples for rates and for the
    // rules to have run a few times.
    for i in 0..6 {
        let r = c.post_json(
            "/v1/revocations",
            &json!({"scope": "token", "iss": "https://idp", "jti": format!("x-{i}")}),
        );
        assert_eq!(r.status(), 503);
        std::thread::sleep(Duration::from_millis(800));
    }
    eventually(Duration::from_secs(30), "us-east collected garbage", || {
        prom.query(r#"veto_gc_removed_total{job="veto"} > 0"#)
            .is_ok_and(|r| !r.is_empty())
    });

    // Every expression the board and the rules hold, as Prometheus itself
    // parsed the rules file.
    let mut queries: Vec<(String, String)> = exprs
        .iter()
        .map(|(title, e)| (format!("panel {title:?}"), as_grafana_sends(e)))
        .collect();
    let rules = prom.api("rules", &[]);
    assert_eq!(rules["status"], "success", "{rules}");
    let mut names = BTreeSet::new();
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["name"].as_str().unwrap().to_owned();
            let query = rule["query"].as_str().unwrap();
            assert_eq!(rule["health"], "ok", "rule {name}: {rule}");
            match rule["type"].as_str().unwrap() {
                "recording" => {
                    queries.push((format!("rule {name}"), query.to_owned()));
                    queries.push((format!("series {name}"), name.clone()));
                }
                _ => queries.push((format!("alert {name}"), without_threshold(query))),
            }
            names.insert(name);
        }
    }
    assert!(names.contains("VetoNodeDown") && names.contains("veto:revoke_errors:ratio5m"));

    let mut empty = Vec::new();
    let mut checked = 0;
    for (what, expr) in &queries {
        let event_only = EVENT_ONLY.iter().any(|m| expr.contains(m));
        let started = Instant::now();
        loop {
            match prom.query(expr) {
                Err(e) => panic!("{what}: {expr} is refused by Prometheus: {e}"),
                Ok(r) if !r.is_empty() => {
                    checked += 1;
                    break;
                }
                Ok(_) if event_only => {
                    eprintln!("{what}: no data, as expected without the rare event ({expr})");
                    break;
                }
                Ok(_) if started.elapsed() > Duration::from_secs(10) => {
                    empty.push(format!("{what}: {expr}"));
                    break;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
    assert!(
        empty.is_empty(),
        "expressions without data:\n{}",
        empty.join("\n")
    );
    assert!(
        checked >= queries.len() - 2,
        "{checked} of {}",
        queries.len()
    );

    // The faults ap-south was given raise their alerts (pending: their `for`
    // is longer than this test), and a healthy cluster raises none of these.
    let c_instance = &targets[2];
    let wanted = [
        "VetoWritesHalted",
        "VetoRevokeErrors",
        "VetoPeerUnreachable",
        "VetoGcPaused",
    ];
    let started = Instant::now();
    loop {
        let active = prom.alerts();
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|want| !active.iter().any(|(n, i, _)| n == want && i == c_instance))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not raised for {c_instance}: {missing:?}; active: {active:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for (name, instance, state) in prom.alerts() {
        assert!(
            ![
                "VetoClockSkewed",
                "VetoPropagationSlow",
                "VetoNodeDown",
                "VetoPeerDown",
                "VetoOriginStale",
                "VetoStaleLookups",
                "VetoEnforcementBelowSlo",
                "VetoProbeStopped",
            ]
            .contains(&name.as_str()),
            "{name} is {state} for {instance} in a healthy cluster"
        );
        if instance != *c_instance {
            assert_ne!(name, "VetoWritesHalted", "{instance}");
            assert_ne!(name, "VetoRevokeErrors", "{instance}");
        }
    }

    // eu-west goes away: Prometheus sees it down, us-east sees its peer
    // lost, and the probe sees canaries no longer enforced everywhere.
    b.stop();
    let b_instance = &targets[1];
    eventually(
        Duration::from_secs(40),
        "eu-west down and lost, canaries failing",
        || {
            let active = prom.alerts();
            active
                .iter()
                .any(|(n, i, _)| n == "VetoNodeDown" && i == b_instance)
                && active
                    .iter()
                    .any(|(n, i, _)| n == "VetoPeerDown" && i == &targets[0])
                && active
                    .iter()
                    .any(|(n, _, _)| n == "VetoEnforcementBelowSlo")
        },
    );
    drop(probe);
    drop(c);
    drop(a);
}
