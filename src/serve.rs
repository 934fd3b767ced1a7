//! `veto serve`: open the store, load the index, and serve HTTP (and gossip, when
//! TLS is configured, and Envoy's gRPC ext_authz with `--grpc-listen`) until
//! SIGINT or SIGTERM; SIGHUP reloads the `--config` file (see [`crate::reload`]).

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt as _;
use veto_api::Backend;
use veto_store::{OpenOptions, Store};

use crate::cli::{LogFormat, ServeArgs};
use crate::config::{self, Settings};
use crate::node::{Node, NodeSettings};
use crate::peers::PeerDirectory;
use crate::replication::{self, ReplicationSettings};
use veto_store::PeerEntry;
use veto_transport::tls::{ClusterTls, TlsFiles};

pub(crate) mod api_tls_args;
#[path = "http/mod.rs"]
pub(crate) mod http;
#[path = "limits_args.rs"]
pub(crate) mod limits_args;

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
///
/// The HTTP port is bound and answering first: until the store is open and
/// the index loaded, everything but `/healthz`, `/readyz` and `/metrics`
/// answers 503, so a gateway never hears a possibly wrong "not revoked" and
/// never waits on a refused connection.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // SIGHUP's default action ends the process. The reloads that listen for
    // it (config, tokens, API certificate) are installed as the node starts,
    // and a node may have none; taking the signal over here, first, makes it
    // a no-op during start-up and on a node with nothing to reload. Tokio
    // keeps the handler installed after `_early_hangup` is dropped.
    let _early_hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let reloader = crate::reload::Reloader::new(&args)?;
    let settings = Settings::resolve(args)?;
    init_logging(settings.log_format);
    let data_dir = settings.data_dir.clone();
    crate::hygiene::restrict_new_files();
    crate::hygiene::private_dir(&data_dir)?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let fd_limit = http::raise_fd_limit().context("cannot read the open-files limit")?;
    let max_connections = http::connection_cap(settings.http.max_connections, fd_limit);
    let api_tls = match &settings.api_tls {
        Some(paths) => Some(Arc::new(http::tls::ApiTls::load(paths)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let http_addr = listener.local_addr().context("no local address")?;
    let grpc_listener = match settings.grpc_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--grpc-listen)"))?,
        ),
        None => None,
    };
    let app: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
    let hot: Arc<OnceLock<veto_api::HotRoutes>> = Arc::new(OnceLock::new());
    let gateway: Arc<OnceLock<veto_api::GatewayAuth>> = Arc::new(OnceLock::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let grpc = match grpc_listener {
        Some(listener) => Some(serve_grpc(listener, Arc::clone(&gateway), stop_rx.clone())?),
        None => None,
    };
    let http = tokio::spawn(serve_http(
        listener,
        (Arc::clone(&app), Arc::clone(&hot)),
        metrics.clone(),
        (settings.http, max_connections),
        api_tls,
        stop_rx,
    ));
    tracing::info!(http = %http_addr, max_connections, fd_limit, "HTTP listening; answering 503 until the state is loaded");
    let transmitters = veto_api::TransmitterSet::new(settings.transmitters.clone());
    let served = start_node(&settings, metrics, (&app, &hot), &gateway, &transmitters).await;
    let node = match served {
        Ok(node) => node,
        Err(e) => {
            let _ = stop_tx.send(true);
            return Err(e);
        }
    };
    if let Some(reloader) = reloader {
        reloader.spawn(&settings, Arc::clone(&node), transmitters);
    }
    tokio::select! {
        () = shutdown_signal() => {}
        ended = http => {
            ended.context("HTTP server task failed")??;
            anyhow::bail!("the HTTP server stopped");
        }
        ended = grpc_ended(grpc) => return Err(ended),
    }
    let _ = stop_tx.send(true);
    node.store().flush().context("final flush failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store, loads the index, starts replication and the background
/// tasks, and installs the real router and its hot routes in `app` and the
/// gateway check of the gRPC server in `gateway`.
async fn start_node(
    settings: &Settings,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    app: (&OnceLock<Router>, &OnceLock<veto_api::HotRoutes>),
    gateway: &OnceLock<veto_api::GatewayAuth>,
    transmitters: &veto_api::TransmitterSet,
) -> anyhow::Result<Arc<Node>> {
    let data_dir = settings.data_dir.clone();
    let opts = OpenOptions {
        min_free_bytes: settings.min_free_bytes,
        ..OpenOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || {
        crate::panics::quietly(|| Store::open(&data_dir, opts))
    })
    .await
    .context("store open task failed")??;
    let admin_token = config::admin_token(settings)?;
    let name = node_name(settings, &store)?;
    let audit = match &settings.audit_log {
        Some(path) => Some(Arc::new(crate::audit_log::AuditLog::open(path, &name)?)),
        None => None,
    };
    let (commands_tx, commands_rx) = tokio::sync::mpsc::unbounded_channel();
    let peers = match &settings.tls {
        Some(_) => Arc::new(
            PeerDirectory::new(&configured_peers(settings, &store)?, &store, commands_tx)
                .context("cannot read the removed peers")?,
        ),
        None => Arc::new(PeerDirectory::disabled()),
    };
    let (node, local_records) = Node::new(
        store,
        NodeSettings {
            name,
            region: settings.region.clone(),
            max_clock_offset: settings.max_clock_offset,
            feed: settings.feed,
            faults: crate::inject::faults_from_env()?,
            audit,
        },
        Arc::clone(&peers),
    )?;
    tracing::info!(
        id = %node.node().id, name = %node.node().name, region = %node.node().region,
        data_dir = %settings.data_dir.display(), "veto node starting"
    );

    let loader = Arc::clone(&node);
    tokio::task::spawn_blocking(move || crate::panics::quietly(|| loader.load()))
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
    spawn_garbage_collector(Arc::clone(&node), settings);
    spawn_storage_recovery(Arc::clone(&node));
    spawn_checkpoint_writer(Arc::clone(&node), settings.checkpoint_interval);
    crate::heap::spawn_trimmer(Arc::clone(&node));
    spawn_metrics_upkeep(metrics.clone());

    let clock = Arc::clone(&node);
    let tokens = veto_api::TokenSet::new(crate::api_tokens::load(
        &admin_token,
        settings.tokens_file.as_deref(),
    )?);
    if let Some(path) = &settings.tokens_file {
        crate::api_tokens::spawn_reload(admin_token.clone(), path.clone(), tokens.clone())?;
    }
    let api_config = veto_api::ApiConfig::new(admin_token)
        .with_tokens(tokens)
        .with_max_token_lifetime(settings.max_token_lifetime)
        .with_max_clock_offset(settings.max_clock_offset)
        // Bulk cutoffs come from the hybrid clock: never behind a stamp this
        // node has made or taken in.
        .with_clock(move || clock.cutoff_now_secs())
        .with_prometheus(metrics);
    let api_config = api_config
        .with_transmitter_set(transmitters.clone())
        .with_set_replay_window(settings.set_replay_window);
    let mut gateway_auth = veto_api::GatewayAuth::new(Arc::clone(&node) as Arc<dyn Backend>);
    let api_config = match settings.max_staleness {
        Some(bound) => {
            tracing::info!(
                max_staleness_s = bound.max.as_secs_f64(),
                policy = bound.policy.as_str(),
                "lookups held to a staleness bound"
            );
            gateway_auth = gateway_auth.with_max_staleness(bound);
            api_config.with_max_staleness(bound.max, bound.policy)
        }
        None => api_config,
    };
    let backend: Arc<dyn Backend> = node.clone();
    // Set once, here: nothing else writes them.
    let _ = gateway.set(gateway_auth);
    let (router, hot_routes) = veto_api::router_and_hot_routes(backend, api_config);
    let _ = app.0.set(router);
    let _ = app.1.set(hot_routes);
    tracing::info!("serving");
    Ok(node)
}

/// Serves HTTP until `stop` turns true, within the HTTP limits: the router
/// in `app` once it is set, the answers of a node still loading before.
async fn serve_http(
    listener: tokio::net::TcpListener,
    (app, hot): (Arc<OnceLock<Router>>, Arc<OnceLock<veto_api::HotRoutes>>),
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    limits: (http::HttpLimits, usize),
    tls: Option<Arc<http::tls::ApiTls>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let outer = Router::new().fallback(move |req: Request| {
        let app = Arc::clone(&app);
        let metrics = metrics.clone();
        async move {
            match app.get() {
                Some(router) => match router.clone().oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                },
                None => loading(req.uri().path(), &metrics),
            }
        }
    });
    http::serve(listener, (outer, hot), limits, tls, stop).await
}

/// Serves Envoy's gRPC ext_authz on `listener` until `stop` turns true:
/// `UNAVAILABLE` until `gateway` is set, then the decision of `/v1/auth`.
fn serve_grpc(
    listener: tokio::net::TcpListener,
    gateway: Arc<OnceLock<veto_api::GatewayAuth>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let addr = listener.local_addr().context("no local address")?;
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        veto_grpc::serve(listener, gateway, stopped)
            .await
            .context("the gRPC server failed")
    });
    tracing::info!(grpc = %addr, "gRPC ext_authz listening (envoy.service.auth.v3.Authorization); answering UNAVAILABLE until the state is loaded");
    Ok(task)
}

/// Resolves when the gRPC server ends, with why; never without one.
async fn grpc_ended(task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>) -> anyhow::Error {
    let Some(task) = task else {
        return std::future::pending().await;
    };
    match task.await {
        Ok(Ok(())) => anyhow::anyhow!("the gRPC server stopped"),
        Ok(Err(e)) => e,
        Err(e) => anyhow::Error::from(e).context("gRPC server task failed"),
    }
}

/// What a node still loading its state answers.
fn loading(path: &str, metrics: &metrics_exporter_prometheus::PrometheusHandle) -> Response {
    match path {
        "/healthz" => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        "/metrics" => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics.render(),
        )
            .into_response(),
        _ => {
            let body =
                serde_json::json!({"error": "unavailable", "message": veto_api::NOT_READY_MESSAGE});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
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

/// Writes the index checkpoint in the background whenever the store changed
/// and the last one's cost allows (see `node::checkpoint`).
fn spawn_checkpoint_writer(node: Arc<Node>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let node = Arc::clone(&node);
            if let Err(e) = tokio::task::spawn_blocking(move || node.maybe_write_checkpoint()).await
            {
                tracing::error!(error = %e, "index checkpoint task failed");
            }
        }
    });
}

/// While writes are halted after a storage failure, tries every few seconds
/// whether the disk takes writes again, and resumes them when it does.
fn spawn_storage_recovery(node: Arc<Node>) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(2));
        let mut last_error = String::new();
        loop {
            ticker.tick().await;
            if node.store().halted().is_none() {
                continue;
            }
            let n = Arc::clone(&node);
            match tokio::task::spawn_blocking(move || n.recover_storage()).await {
                Ok(Ok(true)) => {
                    tracing::info!("writes resumed after the storage failure");
                    last_error.clear();
                }
                Ok(Ok(false)) => {}
                Ok(Err(e))
                    if matches!(
                        e.downcast_ref::<veto_store::StoreError>(),
                        Some(veto_store::StoreError::Wedged(_))
                    ) =>
                {
                    tracing::error!(error = %format!("{e:#}"), "the failed database cannot be reopened in this process: restarting the process");
                    restart_process();
                }
                Ok(Err(e)) => {
                    // Logged once per distinct error, not every two seconds.
                    let text = format!("{e:#}");
                    if text != last_error {
                        tracing::warn!(error = %text, "writes stay halted; retrying");
                        last_error = text;
                    }
                }
                Err(e) => tracing::error!(error = %e, "storage recovery task failed"),
            }
        }
    });
}

/// Replaces this process with a fresh run of the same command line: the last
/// resort when sled cannot close a database that failed. Everything it held
/// is on disk; the new process opens it, loads the index (answering 503
/// meanwhile) and rejoins its peers. The HTTP port is closed for the moment
/// between the two.
fn restart_process() -> ! {
    use std::os::unix::process::CommandExt as _;
    let err = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(e) => e,
    };
    tracing::error!(error = %err, "cannot restart the process; exiting");
    std::process::exit(1);
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
