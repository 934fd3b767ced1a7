//! veto-client's LocalCache against a real `veto serve`: it loads the
//! snapshot, follows the watch stream, enforces new revocations, survives a
//! node restart through resync, answers per its stale policy while the node
//! is down, and, held to a `max_staleness`, fails closed once the node's
//! heartbeats stop.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::Veto;
use veto_client::{CacheConfig, Check, Client, Decision, LocalCache, ScopeKind, StalePolicy};

const ISS: &str = "https://idp.example";
/// Generous: speed is measured by bench/watch-latency.sh, not here.
const BOUND: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn jti(j: &str) -> Check<'_> {
    Check {
        iss: Some(ISS),
        jti: Some(j),
        sub: Some("someone"),
        iat: Some(support::now()),
        ..Check::default()
    }
}

/// A cache that notices a lost node quickly.
fn quick(policy: StalePolicy) -> CacheConfig {
    CacheConfig {
        stale_after: Duration::from_secs(2),
        policy,
        heartbeat: Duration::from_secs(1),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(300),
        ..CacheConfig::default()
    }
}

/// Waits, without polling, until `f` holds for the cache.
async fn until(cache: &LocalCache, what: &str, f: impl Fn(&LocalCache) -> bool) {
    let mut changes = cache.changes();
    let deadline = Instant::now() + BOUND;
    while !f(cache) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not within {BOUND:?}: {what}; {:?}",
            cache.status()
        );
        // Staleness changes without an index change: look again now and then.
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), changes.changed()).await;
    }
}

fn revoked(d: Decision) -> bool {
    matches!(d, Decision::Revoked(_))
}

#[test]
fn a_local_cache_loads_follows_and_enforces_new_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    for i in 0..3 {
        veto.revoke(
            json!({"scope": "token", "iss": ISS, "jti": format!("old-{i}"), "reason": "r"}),
        );
    }
    let rt = runtime();
    rt.block_on(async {
        let node = Client::new(&veto.url)
            .unwrap()
            .with_admin_token(support::ADMIN_TOKEN);
        let cache = LocalCache::start(node.clone(), CacheConfig::default())
            .await
            .unwrap();
        // Loaded from the snapshot.
        assert_eq!(cache.len(), 3);
        let Decision::Revoked(hit) = cache.check(&jti("old-1")) else {
            panic!("old-1 is not revoked in the cache");
        };
        assert_eq!((hit.scope, &*hit.reason), (ScopeKind::Token, "r"));
        assert_eq!(cache.check(&jti("fresh")), Decision::NotRevoked);
        let status = cache.status();
        assert!(!status.stale);
        assert_eq!(status.loads, 1);

        // Followed: every scope, one by one and as a batch.
        let record = node
            .revoke(
                &veto_client::RevokeRequest::new(ScopeKind::Token)
                    .iss(ISS)
                    .jti("new-1"),
            )
            .await
            .unwrap();
        until(&cache, "new-1 enforced", |c| {
            revoked(c.check(&jti("new-1")))
        })
        .await;
        let Decision::Revoked(hit) = cache.check(&jti("new-1")) else {
            unreachable!()
        };
        assert_eq!(hit.id, record.id);
        node.revoke(
            &veto_client::RevokeRequest::new(ScopeKind::Subject)
                .iss(ISS)
                .sub("alice"),
        )
        .await
        .unwrap();
        let alice_old = Check {
            iss: Some(ISS),
            sub: Some("alice"),
            iat: Some(support::now() - 60),
            ..Check::default()
        };
        until(&cache, "alice's older tokens refused", |c| {
            revoked(c.check(&alice_old))
        })
        .await;
        let alice_new = Check {
            iat: Some(support::now() + 60),
            ..alice_old
        };
        assert_eq!(cache.check(&alice_new), Decision::NotRevoked);

        let batch: Vec<_> = (0..2_000)
            .map(|i| veto_client::RevokeRequest::new(ScopeKind::Session).sid(format!("s-{i}")))
            .collect();
        node.revoke_batch(&batch).await.unwrap();
        until(&cache, "the whole batch", |c| c.len() == 3 + 2 + 2_000).await;
        let sid = Check {
            sid: Some("s-1999"),
            ..Check::default()
        };
        assert!(revoked(cache.check(&sid)));
        // The cache agrees with the node on what it holds.
        assert_eq!(node.status().await.unwrap().revocations, cache.len() as u64);
        assert!(cache.status().connected);
        assert!(cache.status().cursor.is_some());
    });
}

#[test]
fn the_cache_survives_a_node_restart_and_fails_closed_while_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "before"}));
    let rt = runtime();
    let node = Client::new(&veto.url)
        .unwrap()
        .with_admin_token(support::ADMIN_TOKEN);
    let cache = rt.block_on(async {
        let cache = LocalCache::start(node.clone(), quick(StalePolicy::FailClosed))
            .await
            .unwrap();
        assert!(revoked(cache.check(&jti("before"))));
        cache
    });

    veto.kill9();
    rt.block_on(async {
        until(&cache, "stale while the node is down", |c| c.is_stale()).await;
        // Closed: a token the cache does not know to be revoked is refused...
        assert_eq!(cache.check(&jti("unknown")), Decision::Unavailable);
        assert!(!cache.check(&jti("unknown")).is_allowed());
        // ...and a known revocation is still reported as such.
        assert!(revoked(cache.check(&jti("before"))));
        assert!(cache.staleness() >= Duration::from_secs(2));
        assert!(!cache.status().connected);
    });

    // Same data and port, new process: the old cursor's epoch is unknown, so
    // the cache resyncs from a fresh snapshot.
    let veto = veto.restart();
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "after"}));
    rt.block_on(async {
        until(&cache, "after enforced", |c| {
            revoked(c.check(&jti("after")))
        })
        .await;
        until(&cache, "fresh again", |c| !c.is_stale()).await;
        let status = cache.status();
        assert!(status.resyncs >= 1, "{status:?}");
        assert!(status.loads >= 2, "{status:?}");
        assert!(revoked(cache.check(&jti("before"))));
        assert_eq!(cache.check(&jti("unknown")), Decision::NotRevoked);
        // And it follows the new process live, not only through the reload.
        node.revoke(
            &veto_client::RevokeRequest::new(ScopeKind::Token)
                .iss(ISS)
                .jti("later"),
        )
        .await
        .unwrap();
        until(&cache, "later enforced", |c| {
            revoked(c.check(&jti("later")))
        })
        .await;
    });
}

#[test]
fn fail_open_answers_from_the_cache_while_the_node_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "known"}));
    let rt = runtime();
    let node = Client::new(&veto.url)
        .unwrap()
        .with_token(support::ADMIN_TOKEN);
    let cache = rt.block_on(async {
        LocalCache::start(node, quick(StalePolicy::FailOpen))
            .await
            .unwrap()
    });
    veto.kill9();
    rt.block_on(async {
        until(&cache, "stale while the node is down", |c| c.is_stale()).await;
        assert_eq!(cache.check(&jti("unknown")), Decision::NotRevoked);
        assert!(revoked(cache.check(&jti("known"))));
    });
}

#[test]
fn a_cache_spawned_while_its_node_is_down_fails_closed_until_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut veto = Veto::start(dir.path(), &[]);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "x"}));
    veto.kill9();
    let rt = runtime();
    let node = Client::new(&veto.url)
        .unwrap()
        .with_token(support::ADMIN_TOKEN);
    let cache = rt.block_on(async {
        let cache = LocalCache::spawn(node, quick(StalePolicy::FailClosed));
        assert!(cache.is_stale());
        assert_eq!(cache.check(&jti("anything")), Decision::Unavailable);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cache.check(&jti("anything")), Decision::Unavailable);
        cache
    });
    let _veto = veto.restart();
    rt.block_on(async {
        until(&cache, "loaded", |c| !c.is_stale()).await;
        assert!(revoked(cache.check(&jti("x"))));
        assert_eq!(cache.check(&jti("anything")), Decision::NotRevoked);
    });
}

/// Sends `signal` (`STOP` or `CONT`) to the node's process.
fn signal(veto: &Veto, signal: &str) {
    let pid = veto.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn held_to_max_staleness_the_cache_fails_closed_once_its_nodes_heartbeats_stop() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "known"}));
    let rt = runtime();
    let config = CacheConfig {
        // Far off: what makes the cache stale here is the heartbeats' age.
        stale_after: Duration::from_secs(60),
        max_staleness: Some(Duration::from_secs(2)),
        ..quick(StalePolicy::FailClosed)
    };
    let cache = rt.block_on(async {
        let cache = LocalCache::start(
            Client::new(&veto.url)
                .unwrap()
                .with_token(support::ADMIN_TOKEN),
            config,
        )
        .await
        .unwrap();
        // The node's first heartbeat comes with `ready`.
        until(&cache, "fresh from the first heartbeat", |c| !c.is_stale()).await;
        assert_eq!(cache.stale_origins(), Vec::new());
        assert_eq!(cache.check(&jti("unknown")), Decision::NotRevoked);
        // Heartbeats keep it fresh past the bound.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!cache.is_stale(), "{:?}", cache.status());
        cache
    });

    // Frozen, the node keeps its connection open and sends nothing.
    signal(&veto, "STOP");
    let frozen = Instant::now();
    rt.block_on(async {
        until(&cache, "stale once the heartbeats stop", |c| c.is_stale()).await;
        assert!(
            frozen.elapsed() >= Duration::from_millis(900),
            "{:?}",
            frozen.elapsed()
        );
        assert_eq!(cache.check(&jti("unknown")), Decision::Unavailable);
        assert!(revoked(cache.check(&jti("known"))));
        // The node stands for its origins (it replicates with nobody), as
        // stale as its last heartbeat is old.
        let stale = cache.stale_origins();
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(stale[0].name, veto.url);
        assert!(
            stale[0].staleness.unwrap() > Duration::from_secs(2),
            "{stale:?}"
        );
        let names =
            |v: Vec<veto_client::StaleOrigin>| v.into_iter().map(|o| o.name).collect::<Vec<_>>();
        assert_eq!(names(cache.status().stale_origins), [veto.url.as_str()]);
        assert!(cache.staleness() < Duration::from_secs(60));
    });

    signal(&veto, "CONT");
    rt.block_on(async {
        until(&cache, "fresh once the heartbeats are back", |c| {
            !c.is_stale()
        })
        .await;
        assert_eq!(cache.check(&jti("unknown")), Decision::NotRevoked);
        assert_eq!(cache.stale_origins(), Vec::new());
    });
}

/// A TCP proxy in front of a node whose connections the test can cut.
struct Proxy {
    url: String,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let open = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (o, c) = (Arc::clone(&open), Arc::clone(&conns));
        tokio::spawn(async move {
            loop {
                let (mut down, _) = listener.accept().await.unwrap();
                if !o.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                c.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                }));
            }
        });
        Proxy { url, open, conns }
    }

    /// Drops every connection, and refuses new ones until `resume`.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn resume(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_broken_stream_resumes_from_its_cursor_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let proxy = Proxy::start(&veto.url).await;
        let direct = Client::new(&veto.url)
            .unwrap()
            .with_admin_token(support::ADMIN_TOKEN);
        let cache = LocalCache::start(
            Client::new(&proxy.url)
                .unwrap()
                .with_token(support::ADMIN_TOKEN),
            quick(StalePolicy::FailClosed),
        )
        .await
        .unwrap();
        direct
            .revoke(
                &veto_client::RevokeRequest::new(ScopeKind::Token)
                    .iss(ISS)
                    .jti("one"),
            )
            .await
            .unwrap();
        until(&cache, "one enforced", |c| revoked(c.check(&jti("one")))).await;

        proxy.cut();
        until(&cache, "the stream noticed the cut", |c| {
            !c.status().connected
        })
        .await;
        for i in 0..20 {
            let req = veto_client::RevokeRequest::new(ScopeKind::Token)
                .iss(ISS)
                .jti(format!("gap-{i}"));
            direct.revoke(&req).await.unwrap();
        }
        proxy.resume();
        until(&cache, "every record revoked during the cut", |c| {
            c.len() == 21
        })
        .await;
        for i in 0..20 {
            assert!(revoked(cache.check(&jti(&format!("gap-{i}")))), "gap-{i}");
        }
        let status = cache.status();
        // Resumed from its cursor: no second snapshot, no resync.
        assert_eq!((status.loads, status.resyncs), (1, 0), "{status:?}");
        assert_eq!(status.cursor.unwrap().rsplit('-').next(), Some("21"));
    });
}
