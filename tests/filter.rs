//! The compact edge filter against a real `veto serve`: `GET /v1/filter`
//! with the admin token, then a compact LocalCache that denies what is
//! revoked (exact keys and a subject cutoff), allows clean tokens, takes a
//! new revocation from the watch stream, and fails closed on a filter hit
//! once the node is gone.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Veto;
use veto_client::{CacheConfig, CacheMode, Check, Client, Decision, LocalCache, ScopeKind};

const ISS: &str = "https://idp.example";

fn check<'a>(jti: &'a str, sub: &'a str, iat: u64) -> Check<'a> {
    Check {
        iss: Some(ISS),
        jti: Some(jti),
        sub: Some(sub),
        iat: Some(iat),
        ..Check::default()
    }
}

#[test]
fn a_compact_cache_enforces_the_filter_and_fails_closed_without_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    for i in 0..5 {
        veto.revoke(json!({"scope": "token", "iss": ISS, "jti": format!("old-{i}")}));
    }
    let cutoff = support::now();
    veto.revoke(json!({"scope": "subject", "iss": ISS, "sub": "mallory", "before": cutoff}));

    let raw = veto.admin_get("/v1/filter");
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["content-type"], "application/octet-stream");
    assert!(raw.headers().contains_key("veto-cursor"));
    assert!(veto.get("/v1/filter").status() == 401);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (cache, later) = rt.block_on(async {
        let client = Client::new(&veto.url)
            .unwrap()
            .with_token(support::ADMIN_TOKEN)
            .with_timeout(Duration::from_secs(2));
        let filter = client.filter().await.unwrap();
        assert_eq!(filter.key_count(), 5);
        assert_eq!(filter.cutoffs().len(), 1);

        let config = CacheConfig {
            mode: CacheMode::Compact,
            heartbeat: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(300),
            ..CacheConfig::default()
        };
        let cache = LocalCache::start(client, config).await.unwrap();
        assert_eq!(cache.filter_keys(), 5);
        let later = cutoff + 10;
        // Exact keys: a filter hit, confirmed by the node.
        let d = cache.check_confirmed(&check("old-3", "alice", later)).await;
        assert!(
            matches!(d, Decision::Revoked(ref r) if r.scope == ScopeKind::Token),
            "{d:?}"
        );
        // Without the node's word the synchronous path fails closed.
        assert_eq!(
            cache.check(&check("old-3", "alice", later)),
            Decision::Unavailable
        );
        // Clean tokens pass without a round trip.
        assert_eq!(
            cache.check(&check("fresh", "alice", later)),
            Decision::NotRevoked
        );
        assert_eq!(
            cache.check_confirmed(&check("fresh", "alice", later)).await,
            Decision::NotRevoked
        );
        // The cutoff is exact: before it revoked, after it allowed.
        let d = cache.check(&check("m1", "mallory", cutoff - 1));
        assert!(
            matches!(d, Decision::Revoked(ref r) if r.scope == ScopeKind::Subject),
            "{d:?}"
        );
        assert_eq!(
            cache.check(&check("m2", "mallory", later)),
            Decision::NotRevoked
        );

        // A new revocation arrives on the watch stream, held exactly.
        let mut changes = cache.changes();
        let url = veto.url.clone();
        tokio::task::spawn_blocking(move || {
            reqwest::blocking::Client::new()
                .post(format!("{url}/v1/revocations"))
                .bearer_auth(support::ADMIN_TOKEN)
                .json(&json!({"scope": "token", "iss": ISS, "jti": "new-1"}))
                .send()
                .unwrap()
        })
        .await
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(
            cache.check(&check("new-1", "bob", later)),
            Decision::Revoked(_)
        ) {
            assert!(
                Instant::now() < deadline,
                "the new revocation never arrived"
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
        }
        (cache, later)
    });

    // The node is gone: a filter hit cannot be confirmed, so it is denied;
    // what the cache holds exactly is still revoked.
    veto.kill9();
    rt.block_on(async {
        let d = cache.check_confirmed(&check("old-1", "alice", later)).await;
        assert_eq!(d, Decision::Unavailable, "a filter hit without the node");
        assert!(!d.is_allowed());
        let d = cache.check_confirmed(&check("new-1", "alice", later)).await;
        assert!(matches!(d, Decision::Revoked(_)), "{d:?}");
    });
}
