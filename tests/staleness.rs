//! The staleness bound end to end with real processes: three regions, ap-south
//! reached only through a `veto-relay`, so that partitioning it makes every
//! other node's copy of ap-south go stale. Behind real nginx, a node bounded
//! with `--max-staleness` (policy closed) refuses clean tokens while
//! partitioned and lets them through again after the heal; a LocalCache
//! following it does the same from the heartbeats' watermarks. Under
//! `stale_policy = "open"` (set in the config file) the same partition gives
//! 200 with `Veto-Stale`. A request tightens the bound with
//! `?max_staleness=`, bad values are 400, and a policy without a bound, or a
//! bound that is not a positive number, stops the node at start.
//!
//! Anti-entropy runs every 500 ms, so a connected origin's watermark is at
//! most about a second old; the bound is 3 s.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Response;
use serde_json::{json, Value};
use support::{
    eventually, gateway_client, get_with_bearer, make_certs, nginx_bin, require_gateway, tls_args,
    veto_bin, Link, Nginx, Upstream, Veto,
};
use veto_client::{CacheConfig, Check, Client, Decision, LocalCache};

/// us-east and eu-west dial each other directly, us-east and ap-south
/// through the link `to_ap`; eu-west hears ap-south only through us-east.
struct Cluster {
    us: Veto,
    eu: Veto,
    _ap: Veto,
    to_ap: Link,
    _dirs: Vec<tempfile::TempDir>,
    _certs: tempfile::TempDir,
}

/// Starts the regions, `us_extra` flags on us-east, and waits until every
/// node has heard from every origin.
fn cluster(us_extra: &[String]) -> Cluster {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["us", "eu", "ap"]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| support::free_udp_port()).collect();
    let args = |i: usize, name: &str, region: &str| tls_args(certs.path(), name, ports[i], region);
    let to_ap = Link::start(ports[0], ports[2], 21);
    let mut eu_args = args(1, "eu", "eu-west");
    eu_args.extend(["--peer".into(), format!("127.0.0.1:{}", ports[0])]);
    let eu = Veto::start_with(dirs[1].path(), &eu_args);
    let mut ap_args = args(2, "ap", "ap-south");
    ap_args.extend(["--peer".into(), format!("127.0.0.1:{}", to_ap.back.listen)]);
    let ap = Veto::start_with(dirs[2].path(), &ap_args);
    let mut us_args = args(0, "us", "us-east");
    us_args.extend(["--peer".into(), format!("127.0.0.1:{}", ports[1])]);
    us_args.extend(["--peer".into(), format!("127.0.0.1:{}", to_ap.there.listen)]);
    us_args.extend(us_extra.iter().cloned());
    let us = Veto::start_with(dirs[0].path(), &us_args);
    let c = Cluster {
        us,
        eu,
        _ap: ap,
        to_ap,
        _dirs: dirs,
        _certs: certs,
    };
    eventually(
        Duration::from_secs(20),
        "every origin known everywhere",
        || {
            [&c.us, &c.eu].iter().all(|n| {
                let origins = n.status()["origins"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                origins
                    .iter()
                    .filter(|o| o["staleness_s"].is_number())
                    .count()
                    == 3
            })
        },
    );
    c
}

fn auth(node: &Veto, path_and_query: &str, token: &str) -> Response {
    get_with_bearer(
        &node.http,
        &format!("{}{path_and_query}", node.url),
        Some(token),
    )
}

/// The names in `"stale"` of a `/v1/check` answer (empty when there is none).
fn stale_names(answer: &Value) -> Vec<String> {
    answer["stale"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn check(node: &Veto, query: &str) -> Value {
    node.get_json(&format!("/v1/check?{query}"))
}

fn veto_stale(r: &Response) -> Option<String> {
    r.headers()
        .get("veto-stale")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A counter of the node's `/metrics`, 0 when absent.
fn metric(node: &Veto, series: &str) -> f64 {
    let text = node.get("/metrics").text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const CLEAN: &str = "clean-opaque-token";
const LEAKED: &str = "leaked-opaque-token";

#[test]
fn closed_behind_nginx_a_partitioned_region_stops_clean_tokens_until_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(&["--max-staleness".into(), "3".into()]);
    c.us.revoke(json!({"scope": "token", "token": LEAKED}));
    let upstream = Upstream::start();
    // Without nginx the node's own answers are still checked.
    let nginx = require_gateway("nginx", nginx_bin())
        .map(|bin| Nginx::start(&bin, &dir.path().join("nginx"), c.us.port(), upstream.port));
    let through_nginx = |token: &str| {
        nginx.as_ref().map(|n| {
            get_with_bearer(&gateway_client(), &n.url("/api/orders"), Some(token))
                .status()
                .as_u16()
        })
    };
    let rt = runtime();
    let cache = rt.block_on(async {
        let config = CacheConfig {
            max_staleness: Some(Duration::from_secs(3)),
            ..CacheConfig::default()
        };
        let cache = LocalCache::start(
            Client::new(&c.us.url)
                .unwrap()
                .with_token(support::ADMIN_TOKEN),
            config,
        )
        .await
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.is_stale() {
            assert!(Instant::now() < deadline, "{:?}", cache.status());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cache
    });
    let clean = Check {
        jti: Some("clean-jti"),
        ..Check::default()
    };

    // Connected: clean tokens pass, the leaked one does not.
    assert_eq!(auth(&c.us, "/v1/auth", CLEAN).status(), 200);
    assert_eq!(stale_names(&check(&c.us, "jti=j")), Vec::<String>::new());
    if let Some(status) = through_nginx(CLEAN) {
        assert_eq!(status, 200);
        assert_eq!(through_nginx(LEAKED), Some(401));
    }
    assert_eq!(cache.check(&clean), Decision::NotRevoked);

    c.to_ap.command("partition on");
    let cut = Instant::now();
    eventually(Duration::from_secs(10), "us-east stale", || {
        auth(&c.us, "/v1/auth", CLEAN).status() == 503
    });
    // Not at once: ap-south was fresh, and has to fall 3 s behind.
    assert!(
        cut.elapsed() > Duration::from_millis(1500),
        "{:?}",
        cut.elapsed()
    );
    let r = auth(&c.us, "/v1/auth", CLEAN);
    assert_eq!(veto_stale(&r).unwrap().split('=').next(), Some("ap"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "stale");
    assert!(body["stale"]["ap"].as_f64().unwrap() > 3.0, "{body}");
    let answer = check(&c.us, "jti=j");
    assert_eq!(answer["revoked"], false);
    assert_eq!(stale_names(&answer), ["ap"]);
    // Revoked beats stale.
    assert_eq!(auth(&c.us, "/v1/auth", LEAKED).status(), 401);
    assert_eq!(check(&c.us, &format!("token={LEAKED}"))["revoked"], true);
    if nginx.is_some() {
        let hits = upstream.hits();
        let status = through_nginx(CLEAN).unwrap();
        assert!(
            status >= 500 || status == 401 || status == 403,
            "nginx let a stale answer through: {status}"
        );
        assert_eq!(through_nginx(LEAKED), Some(401));
        assert_eq!(upstream.hits(), hits, "nothing reached the upstream");
    }
    assert!(
        metric(
            &c.us,
            r#"veto_stale_decisions_total{policy="closed",endpoint="auth"}"#
        ) >= 1.0
    );
    // The cache, from the heartbeats' watermarks, agrees.
    eventually(Duration::from_secs(5), "the cache stale", || {
        cache.is_stale()
    });
    assert_eq!(cache.check(&clean), Decision::Unavailable);
    let names: Vec<String> = cache.stale_origins().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["ap"]);

    c.to_ap.command("partition off");
    eventually(Duration::from_secs(30), "us-east fresh again", || {
        auth(&c.us, "/v1/auth", CLEAN).status() == 200
    });
    assert_eq!(stale_names(&check(&c.us, "jti=j")), Vec::<String>::new());
    if let Some(status) = through_nginx(CLEAN) {
        assert_eq!(status, 200);
    }
    eventually(Duration::from_secs(5), "the cache fresh again", || {
        !cache.is_stale()
    });
    assert_eq!(cache.check(&clean), Decision::NotRevoked);
    drop(rt);
}

#[test]
fn open_from_the_config_file_passes_with_veto_stale_and_requests_tighten_the_bound() {
    let conf = tempfile::tempdir().unwrap();
    let file = conf.path().join("veto.toml");
    std::fs::write(&file, "max_staleness = 3\nstale_policy = \"open\"\n").unwrap();
    let c = cluster(&["--config".into(), file.display().to_string()]);
    c.us.revoke(json!({"scope": "token", "token": LEAKED}));

    // Connected: nothing to say, unless a request asks for a tighter bound
    // than any link can keep; the configured policy holds for it.
    let r = auth(&c.us, "/v1/auth", CLEAN);
    assert_eq!((r.status().as_u16(), veto_stale(&r)), (200, None));
    let r = auth(&c.us, "/v1/auth?max_staleness=0.001", CLEAN);
    assert_eq!(r.status(), 200);
    assert!(veto_stale(&r).is_some());
    // eu-west has no bound: the request's holds there, closed.
    let r = auth(&c.eu, "/v1/auth?max_staleness=0.001", CLEAN);
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().unwrap()["error"], "stale");
    assert_eq!(
        auth(&c.eu, "/v1/auth?max_staleness=30", CLEAN).status(),
        200
    );
    assert_eq!(auth(&c.eu, "/v1/auth", CLEAN).status(), 200);
    assert!(!stale_names(&check(&c.eu, "jti=j&max_staleness=0.001")).is_empty());
    assert!(stale_names(&check(&c.eu, "jti=j&max_staleness=30")).is_empty());
    for bad in ["0", "-1", "abc", "inf", ""] {
        let q = format!("max_staleness={bad}");
        let r = auth(&c.eu, &format!("/v1/auth?{q}"), CLEAN);
        assert_eq!(r.status(), 400, "{bad:?}");
        assert_eq!(r.json::<Value>().unwrap()["error"], "invalid_request");
        assert_eq!(c.eu.get(&format!("/v1/check?jti=j&{q}")).status(), 400);
        let r =
            c.eu.post_json(&format!("/v1/check?{q}"), &json!([{"jti": "j"}]));
        assert_eq!(r.status(), 400, "{bad:?}");
    }

    c.to_ap.command("partition on");
    eventually(Duration::from_secs(10), "us-east stale", || {
        veto_stale(&auth(&c.us, "/v1/auth", CLEAN)).is_some()
    });
    let r = auth(&c.us, "/v1/auth", CLEAN);
    assert_eq!(r.status(), 200);
    let header = veto_stale(&r).unwrap();
    let (name, secs) = header.split_once('=').unwrap();
    assert_eq!(name, "ap", "{header}");
    // Seconds with one decimal.
    assert!(secs.parse::<f64>().unwrap() >= 3.0, "{header}");
    assert_eq!(secs.split('.').nth(1).map(str::len), Some(1), "{header}");
    // A looser request is held to the configured bound.
    assert!(veto_stale(&auth(&c.us, "/v1/auth?max_staleness=1000", CLEAN)).is_some());
    assert_eq!(auth(&c.us, "/v1/auth", LEAKED).status(), 401);
    assert_eq!(stale_names(&check(&c.us, "jti=j")), ["ap"]);
    let r =
        c.us.post_json("/v1/check", &json!([{"jti": "j"}, {"token": LEAKED}]));
    let batch: Value = r.json().unwrap();
    assert_eq!(batch["results"][1]["revoked"], true);
    assert_eq!(stale_names(&batch), ["ap"]);
    assert!(
        metric(
            &c.us,
            r#"veto_stale_decisions_total{policy="open",endpoint="auth"}"#
        ) >= 1.0
    );
    assert!(
        metric(
            &c.us,
            r#"veto_stale_decisions_total{policy="open",endpoint="check"}"#
        ) >= 3.0
    );

    c.to_ap.command("partition off");
    eventually(Duration::from_secs(30), "us-east fresh again", || {
        veto_stale(&auth(&c.us, "/v1/auth", CLEAN)).is_none()
    });
}

/// Runs `veto` with `args`, expecting it to exit at once; its status and
/// stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(veto_bin())
        .args(args)
        .env_remove("VETO_CONFIG")
        .env_remove("VETO_MAX_STALENESS")
        .env_remove("VETO_STALE_POLICY")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("veto {args:?} is still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn serve(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let data = dir.join("data").display().to_string();
    let mut args = vec!["serve", "--data-dir", &data, "--listen", "127.0.0.1:0"];
    args.extend(extra);
    run(&args, env)
}

fn config_check(dir: &Path, text: &str) -> (bool, String) {
    let path = dir.join("veto.toml");
    std::fs::write(&path, text).unwrap();
    run(&["config", "check", &path.display().to_string()], &[])
}

#[test]
fn a_policy_without_a_bound_or_a_bound_that_is_not_positive_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, env) in [
        (&["--stale-policy", "open"][..], &[][..]),
        (&[][..], &[("VETO_STALE_POLICY", "closed")][..]),
    ] {
        let (ok, stderr) = serve(dir.path(), extra, env);
        assert!(!ok);
        assert!(stderr.contains("--stale-policy"), "{stderr}");
        assert!(stderr.contains("needs --max-staleness"), "{stderr}");
    }
    for bad in ["0", "-1", "abc", "inf", "NaN"] {
        let (ok, stderr) = serve(dir.path(), &["--max-staleness", bad], &[]);
        assert!(!ok, "{bad}");
        assert!(
            stderr.contains("positive number of seconds"),
            "{bad}: {stderr}"
        );
    }
    let (ok, stderr) = serve(
        dir.path(),
        &["--max-staleness", "3", "--stale-policy", "sometimes"],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("sometimes"), "{stderr}");

    // The config file's keys.
    for good in [
        "max_staleness = 3\n",
        "max_staleness = 2.5\nstale_policy = \"open\"\n",
        "max_staleness = 10\nstale_policy = \"closed\"\n",
    ] {
        let (ok, stderr) = config_check(dir.path(), good);
        assert!(ok, "{good}: {stderr}");
    }
    for (bad, says) in [
        (
            "stale_policy = \"open\"\n",
            "needs --max-staleness (`max_staleness`)",
        ),
        (
            "max_staleness = 0\n",
            "`max_staleness` must be a positive number",
        ),
        (
            "max_staleness = -2.5\n",
            "`max_staleness` must be a positive number",
        ),
        ("max_staleness = \"3s\"\n", "`max_staleness`: invalid type"),
        (
            "max_staleness = 3\nstale_policy = \"sometimes\"\n",
            "`stale_policy`: unknown variant `sometimes`",
        ),
    ] {
        let (ok, stderr) = config_check(dir.path(), bad);
        assert!(!ok, "{bad}");
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
    // And `veto serve --config` refuses what the check refuses.
    std::fs::write(dir.path().join("veto.toml"), "stale_policy = \"open\"\n").unwrap();
    let config = dir.path().join("veto.toml").display().to_string();
    let (ok, stderr) = serve(dir.path(), &["--config", &config], &[]);
    assert!(!ok);
    assert!(stderr.contains("needs --max-staleness"), "{stderr}");
}
