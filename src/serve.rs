//! `veto serve`: open the store, load the index, and serve HTTP (and gossip, when
//! TLS is configured) until SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use veto_api::Backend;
use veto_store::{OpenOptions, Store};

use crate::cli::{LogFormat, ServeArgs};
use crate::config::{self, Settings};
use crate::node::Node;
use crate::peers::PeerDirectory;
use crate::replication::{self, ReplicationSettings};
use veto_gossip::tls::{ClusterTls, TlsFiles};
use veto_store::PeerEntry;

/// Sets up tracing: `RUST_LOG` filters (default `info`), text or JSON lines on stderr.
pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs a node until it is told to stop.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    init_logging(settings.log_format);
    let data_dir = settings.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir, OpenOptions::default()))
        .await
        .context("store open task failed")??;
    let admin_token = config::admin_token(&settings)?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let http_addr = listener.local_addr().context("no local address")?;

    let name = node_name(&settings, &store)?;
    let (commands_tx, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let peers = match &settings.tls {
        Some(_) => Arc::new(PeerDirectory::new(
            &configured_peers(&settings, &store)?,
            commands_tx,
        )),
        None => Arc::new(PeerDirectory::disabled()),
    };
    let (node, local_records) = Node::new(
        store,
        name,
        settings.region.clone(),
        settings.max_clock_offset,
        Arc::clone(&peers),
    )?;
    tracing::info!(
        id = %node.node().id, name = %node.node().name, region = %node.node().region,
        http = %http_addr, data_dir = %settings.data_dir.display(), "veto node starting"
    );

    let loader = Arc::clone(&node);
    tokio::task::spawn_blocking(move || loader.load())
        .await
        .context("index load task failed")??;

    match &settings.tls {
        Some(tls) => {
            let replication = ReplicationSettings {
                listen: settings.gossip_listen,
                tls: TlsFiles {
                    ca: tls.ca.clone(),
                    cert: tls.cert.clone(),
                    key: tls.key.clone(),
                },
                anti_entropy_period: settings.anti_entropy_period,
                gc_grace: settings.gc_grace,
                max_clock_offset: settings.max_clock_offset,
            };
            let gossip = replication::start(
                Arc::clone(&node),
                replication,
                peers,
                local_records,
                commands_rx,
            )
            .await?;
            tracing::info!(%gossip, "replication listening (QUIC)");
        }
        None => {
            tracing::info!(
                "replication is off: give --tls-ca, --tls-cert and --tls-key to join a cluster"
            );
            // Nobody replicates local records; drain them so the channel stays empty.
            tokio::spawn(async move {
                let mut local_records = local_records;
                while local_records.recv().await.is_some() {}
            });
        }
    }
    spawn_garbage_collector(Arc::clone(&node), &settings);
    spawn_metrics_upkeep(metrics.clone());

    let api_config = veto_api::ApiConfig::new(admin_token)
        .with_max_token_lifetime(settings.max_token_lifetime)
        .with_prometheus(metrics);
    let api_config = settings
        .transmitters
        .iter()
        .cloned()
        .fold(api_config, veto_api::ApiConfig::with_transmitter)
        .with_set_replay_window(settings.set_replay_window);
    let backend: Arc<dyn Backend> = node.clone();
    let ready = Arc::clone(&node);
    let app =
        veto_api::router(backend, api_config).layer(axum::middleware::from_fn(move |req, next| {
            let ready = ready.ready();
            serve_when_ready(ready, req, next)
        }));
    tracing::info!(http = %http_addr, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    node.store().flush().context("final flush failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The node's name: `--name`, else the name in its certificate, else
/// `node-` and the first digits of its id.
fn node_name(settings: &Settings, store: &Store) -> anyhow::Result<String> {
    let cert_name = match &settings.tls {
        Some(tls) => {
            let files = TlsFiles {
                ca: tls.ca.clone(),
                cert: tls.cert.clone(),
                key: tls.key.clone(),
            };
            Some(
                ClusterTls::load(&files)
                    .context("cannot load the TLS identity")?
                    .node_name()
                    .to_owned(),
            )
        }
        None => None,
    };
    Ok(match (&settings.name, cert_name) {
        (Some(name), Some(cert)) if *name != cert => {
            tracing::warn!(name = %name, certificate = %cert, "--name differs from the certificate's name; peers see the certificate's");
            name.clone()
        }
        (Some(name), _) => name.clone(),
        (None, Some(cert)) => cert,
        (None, None) => format!("node-{}", &store.node_id().to_string()[..6]),
    })
}

/// The persisted peers plus those given with `--peer`, which are persisted too
/// so that `veto peers remove` can forget them.
fn configured_peers(settings: &Settings, store: &Store) -> anyhow::Result<Vec<PeerEntry>> {
    let mut peers = store.peers().context("cannot read the peer list")?;
    for addr in &settings.peers {
        if !peers.iter().any(|p| &p.addr == addr) {
            let entry = PeerEntry {
                addr: addr.clone(),
                name: None,
            };
            store
                .put_peer(&entry)
                .context("cannot persist the peer list")?;
            peers.push(entry);
        }
    }
    Ok(peers)
}

/// Until the index is loaded, only health and metrics answer; a lookup must never
/// say "not revoked" from a half-loaded index.
async fn serve_when_ready(ready: bool, req: Request, next: Next) -> Response {
    let always = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    if ready || always {
        return next.run(req).await;
    }
    let body = serde_json::json!({"error": "unavailable", "message": "the node is still loading its state"});
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

fn spawn_garbage_collector(node: Arc<Node>, settings: &Settings) {
    let (interval, grace) = (settings.gc_interval, settings.gc_grace);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let node = Arc::clone(&node);
            match tokio::task::spawn_blocking(move || node.collect_garbage(grace)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "garbage collection failed"),
                Err(e) => tracing::error!(error = %e, "garbage collection task failed"),
            }
        }
    });
}

fn spawn_metrics_upkeep(handle: metrics_exporter_prometheus::PrometheusHandle) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            ticker.tick().await;
            handle.run_upkeep();
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
