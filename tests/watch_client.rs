//! veto-client's `Client` against a real `veto serve`: every endpoint, the
//! API's errors surfaced with their code, and snapshot-then-watch giving every
//! record exactly once while revocations keep arriving.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::Veto;
use veto_client::{
    AuditQuery, CheckItem, Claims, Client, ClientError, RevokeRequest, ScopeKind, WatchEvent,
};

const ISS: &str = "https://idp.example";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn claims(jti: &str) -> Claims {
    Claims {
        iss: Some(ISS.into()),
        jti: Some(jti.into()),
        ..Claims::default()
    }
}

#[track_caller]
fn api_error(e: ClientError, status: u16, code: &str) -> String {
    match e {
        ClientError::Api {
            status: s,
            code: c,
            message,
        } => {
            assert_eq!((s, c.as_str()), (status, code), "{message}");
            message
        }
        other => panic!("expected {status} {code}, got {other}"),
    }
}

#[test]
fn the_client_speaks_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    support::make_certs(certs.path(), &["eu"]);
    let veto = Veto::start_with(
        dir.path(),
        &support::tls_args(certs.path(), "eu", support::free_udp_port(), "eu-west"),
    );
    runtime().block_on(async {
        let open = Client::new(&veto.url).unwrap();
        let node = open.clone().with_admin_token(support::ADMIN_TOKEN);

        node.healthz().await.unwrap();
        assert!(node.readyz().await.unwrap());

        let r = node
            .revoke(
                &RevokeRequest::new(ScopeKind::Token)
                    .iss(ISS)
                    .jti("t1")
                    .reason("leak"),
            )
            .await
            .unwrap();
        assert_eq!(r.reason, "leak");
        assert_eq!(
            r.target,
            veto_client::Target::Token {
                iss: Some(ISS.into()),
                jti: "t1".into()
            }
        );
        let batch = node
            .revoke_batch(&[
                RevokeRequest::new(ScopeKind::Session).sid("s1"),
                RevokeRequest::new(ScopeKind::Token).token("opaque-secret"),
            ])
            .await
            .unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(
            batch[1].target,
            veto_client::Target::opaque_token("opaque-secret")
        );

        let hit = node.check(&claims("t1")).await.unwrap().unwrap();
        assert_eq!(
            (hit.scope, hit.id, &*hit.reason),
            (ScopeKind::Token, r.id, "leak")
        );
        assert_eq!(node.check(&claims("t2")).await.unwrap(), None);
        assert!(node.check_token("opaque-secret").await.unwrap().is_some());
        let jwt = support::jwt(
            serde_json::json!({"alg": "none"}),
            serde_json::json!({"iss": ISS, "jti": "t1"}),
        );
        let answers = node
            .check_batch(&[
                CheckItem::Claims(claims("t2")),
                CheckItem::Token { token: jwt.clone() },
                CheckItem::Claims(Claims {
                    sid: Some("s1".into()),
                    ..Claims::default()
                }),
            ])
            .await
            .unwrap();
        assert_eq!(
            answers.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert!(!node.auth(&jwt).await.unwrap());
        assert!(node.auth("clean-opaque").await.unwrap());

        node.oauth2_revoke("another-opaque", Some("refresh_token"))
            .await
            .unwrap();
        assert!(node.check_token("another-opaque").await.unwrap().is_some());

        let trail = node
            .audit(&AuditQuery {
                scope: Some(ScopeKind::Token),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(trail.len(), 3);
        let one = node
            .audit(&AuditQuery {
                key: Some("t1".into()),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(one, vec![r.clone()]);

        let added = node.add_peer("127.0.0.1:1", Some("nowhere")).await.unwrap();
        assert_eq!(added.addr, "127.0.0.1:1");
        assert!(node
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.addr == "127.0.0.1:1"));
        node.remove_peer("nowhere").await.unwrap();
        api_error(
            node.remove_peer("nowhere").await.unwrap_err(),
            404,
            "not_found",
        );

        let status = open.status().await.unwrap();
        assert_eq!(status.revocations, 4);
        assert_eq!(status.node.region, "eu-west");
        assert!(open.metrics().await.unwrap().contains("veto_"));

        let (cursor, records) = node.snapshot().await.unwrap().collect().await.unwrap();
        assert_eq!(records.len(), 4);
        assert!(records.contains(&r));
        let mut watch = node
            .watch(Some(&cursor), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        assert_eq!(
            watch.next().await.unwrap(),
            Some(WatchEvent::Ready {
                cursor: cursor.clone()
            })
        );
        // A heartbeat at once, with the node's watermarks (a node that
        // replicates with nobody holds all it makes, and lists no origin).
        match watch.next().await.unwrap() {
            Some(WatchEvent::Heartbeat {
                origins: Some(origins),
            }) => assert!(
                origins.iter().all(|o| o.staleness_s.is_some()),
                "{origins:?}"
            ),
            other => panic!("expected a heartbeat, got {other:?}"),
        }
        let r2 = node
            .revoke(&RevokeRequest::new(ScopeKind::Key).kid("k9"))
            .await
            .unwrap();
        match watch.next().await.unwrap() {
            Some(WatchEvent::Record { record, .. }) => assert_eq!(record, r2),
            other => panic!("expected the record, got {other:?}"),
        }
        assert!(matches!(
            watch.next().await.unwrap(),
            Some(WatchEvent::Heartbeat { origins: Some(_) })
        ));

        // The API's errors come through with their code and message.
        let m = api_error(
            node.revoke(&RevokeRequest::new(ScopeKind::Session).jti("x"))
                .await
                .unwrap_err(),
            400,
            "invalid_request",
        );
        assert!(m.contains("`jti`"), "{m}");
        assert!(matches!(
            open.revoke(&RevokeRequest::new(ScopeKind::Key).kid("k"))
                .await,
            Err(ClientError::NoAdminToken)
        ));
        let wrong = open.clone().with_admin_token("wrong");
        api_error(
            wrong
                .revoke(&RevokeRequest::new(ScopeKind::Key).kid("k"))
                .await
                .unwrap_err(),
            401,
            "unauthorized",
        );
        let stale = format!("{}-1", "0".repeat(16));
        let mut resync = node.watch(Some(&stale), None).await.unwrap();
        match resync.next().await.unwrap() {
            Some(WatchEvent::Resync { reason, .. }) => assert_eq!(reason, "unknown_epoch"),
            other => panic!("expected resync, got {other:?}"),
        }
        assert_eq!(resync.next().await.unwrap(), None);
        api_error(
            node.watch(Some("garbage"), None).await.unwrap_err(),
            400,
            "invalid_request",
        );
        // Without a token the streams are refused: they carry what is revoked.
        api_error(
            open.watch(None, None).await.unwrap_err(),
            401,
            "unauthorized",
        );
        api_error(open.snapshot().await.unwrap_err(), 401, "unauthorized");
        assert!(matches!(Client::new("not a url"), Err(ClientError::Url(_))));
    });
}

#[test]
fn snapshot_then_watch_gives_every_record_exactly_once_while_revocations_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    let rt = runtime();
    rt.block_on(async {
        let node = Client::new(&veto.url)
            .unwrap()
            .with_admin_token(support::ADMIN_TOKEN);
        let preload: Vec<_> = (0..5_000)
            .map(|i| RevokeRequest::new(ScopeKind::Token).jti(format!("pre-{i}")))
            .collect();
        node.revoke_batch(&preload).await.unwrap();

        // A writer keeps revoking while the snapshot is taken and read.
        let writer = {
            let node = node.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..300 {
                    ids.push(
                        node.revoke(&RevokeRequest::new(ScopeKind::Token).jti(format!("live-{i}")))
                            .await
                            .unwrap()
                            .id,
                    );
                }
                ids
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut snapshot = node.snapshot().await.unwrap();
        let cursor = snapshot.cursor().to_owned();
        let mut seen = HashSet::new();
        let mut in_snapshot = 0;
        while let Some(r) = snapshot.next().await.unwrap() {
            assert!(seen.insert(r.id), "{} twice in the snapshot", r.id);
            in_snapshot += 1;
        }
        let written = writer.await.unwrap();

        let mut watch = node.watch(Some(&cursor), None).await.unwrap();
        let mut from_watch = HashSet::new();
        let target = 5_000 + written.len();
        while seen.len() < target {
            match tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("records stopped coming")
                .unwrap()
            {
                Some(WatchEvent::Record { record, .. }) => {
                    assert!(
                        from_watch.insert(record.id),
                        "{} twice on the stream",
                        record.id
                    );
                    seen.insert(record.id);
                }
                Some(WatchEvent::Ready { .. } | WatchEvent::Heartbeat { .. }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen.len(), target);
        for id in &written {
            assert!(seen.contains(id), "{id} missed");
        }
        assert!(in_snapshot >= 5_000);
        // Every record the stream repeats from the snapshot was written while
        // the snapshot was read; none of the preload comes twice.
        assert!(from_watch.len() <= written.len());
    });
}
