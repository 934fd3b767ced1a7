//! Revoke-to-enforce latency: the time from sending a revocation to a node
//! until a [`LocalCache`] following that node's watch stream refuses the
//! token.
//!
//! ```text
//! cargo run --release -p veto-client --example watch_latency -- URL ADMIN_TOKEN [COUNT]
//! ```
//!
//! It revokes COUNT tokens (default 1,000) one after another, after 50
//! unmeasured warm-up revocations. For each it notes when the request was
//! sent, when the node's 201 arrived, and when the cache first answered
//! "revoked" (woken by the cache's change notification, not by polling).
//! It prints percentiles of send-to-enforce and of 201-to-enforce (negative
//! when the cache enforced before the answer arrived).

use std::time::{Duration, Instant};

use veto_client::{CacheConfig, Check, Client, Decision, LocalCache, RevokeRequest, ScopeKind};

const ISS: &str = "https://bench.example";
const WARMUP: usize = 50;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms",
        ms.len(),
        percentile(&ms, 0.50),
        percentile(&ms, 0.90),
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
}

async fn one(node: &Client, cache: &LocalCache, jti: String) -> (f64, f64) {
    let mut changes = cache.changes();
    let check = Check {
        iss: Some(ISS),
        jti: Some(&jti),
        ..Check::default()
    };
    assert_eq!(cache.check(&check), Decision::NotRevoked);
    let req = RevokeRequest::new(ScopeKind::Token)
        .iss(ISS)
        .jti(jti.clone());
    let sent = Instant::now();
    let revoke = {
        let node = node.clone();
        tokio::spawn(async move {
            node.revoke(&req).await.expect("revoke failed");
            Instant::now()
        })
    };
    loop {
        if matches!(cache.check(&check), Decision::Revoked(_)) {
            break;
        }
        tokio::time::timeout(Duration::from_secs(10), changes.changed())
            .await
            .expect("the cache did not enforce within 10 s")
            .expect("the cache stopped");
    }
    let enforced = Instant::now();
    let acked = revoke.await.expect("revoke task");
    let to_enforce = enforced.duration_since(sent).as_secs_f64() * 1e3;
    let after_ack = if enforced >= acked {
        enforced.duration_since(acked).as_secs_f64() * 1e3
    } else {
        -(acked.duration_since(enforced).as_secs_f64() * 1e3)
    };
    (to_enforce, after_ack)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: watch_latency URL ADMIN_TOKEN [COUNT]");
        std::process::exit(2);
    };
    let count: usize = args.next().map_or(1_000, |c| c.parse().expect("COUNT"));
    let node = Client::new(&url).expect("node URL").with_admin_token(token);
    let started = Instant::now();
    let cache = LocalCache::start(node.clone(), CacheConfig::default())
        .await
        .expect("load the snapshot");
    println!(
        "snapshot: {} records loaded in {:.0} ms",
        cache.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let run = std::process::id();
    for i in 0..WARMUP {
        one(&node, &cache, format!("warm-{run}-{i}")).await;
    }
    let mut to_enforce = Vec::with_capacity(count);
    let mut after_ack = Vec::with_capacity(count);
    for i in 0..count {
        let (a, b) = one(&node, &cache, format!("lat-{run}-{i}")).await;
        to_enforce.push(a);
        after_ack.push(b);
    }
    summary("send->enforced", to_enforce);
    summary("201->enforced", after_ack);
    println!("cache: {:?}", cache.status());
}
