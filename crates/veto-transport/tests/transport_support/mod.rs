//! Shared helpers for the transport and relay tests: certificates in a temp
//! dir, fast transport settings, and waiting for events.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use veto_transport::tls::{self, ClusterTls, TlsFiles};
use veto_transport::{ConnId, Lane, Transport, TransportConfig, TransportEvent};

/// A cluster CA on disk, and node certificates made from it.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
}

impl Cluster {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        tls::write_ca(dir.path(), false).unwrap();
        Cluster { dir }
    }

    pub(crate) fn ca_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Writes `NAME.pem`/`NAME.key` next to the CA (as `veto cert node` does)
    /// and loads them.
    pub(crate) fn files(&self, name: &str) -> TlsFiles {
        let paths = tls::write_node(self.dir.path(), name, self.dir.path(), true).unwrap();
        TlsFiles {
            ca: self.dir.path().join(tls::CA_CERT_FILE),
            cert: paths.cert,
            key: paths.key,
        }
    }

    pub(crate) fn tls(&self, name: &str) -> ClusterTls {
        ClusterTls::load(&self.files(name)).unwrap()
    }

    pub(crate) fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(tls::CA_CERT_FILE)).unwrap()
    }

    pub(crate) fn ca_key_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(tls::CA_KEY_FILE)).unwrap()
    }
}

pub(crate) fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Settings scaled down so tests see reconnects and timeouts quickly.
pub(crate) fn fast_config(listen: SocketAddr, tls: ClusterTls) -> TransportConfig {
    let mut config = TransportConfig::new(listen, tls);
    config.keep_alive = Duration::from_millis(250);
    config.idle_timeout = Duration::from_millis(1500);
    config.handshake_timeout = Duration::from_secs(2);
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(300);
    config
}

pub(crate) async fn start(cluster: &Cluster, name: &str) -> (Transport, Receiver<TransportEvent>) {
    Transport::bind(fast_config(localhost(), cluster.tls(name)))
        .await
        .unwrap()
}

/// Waits for the first event that `pick` maps to Some, discarding others.
pub(crate) async fn wait_for<T>(
    rx: &mut Receiver<TransportEvent>,
    within: Duration,
    mut pick: impl FnMut(&TransportEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching event within {within:?}"))
            .expect("event channel closed");
        if let Some(out) = pick(&event) {
            return out;
        }
    }
}

/// Waits for a `Connected` event; returns (conn, peer name, dialed).
pub(crate) async fn connected(rx: &mut Receiver<TransportEvent>) -> (ConnId, String, bool) {
    wait_for(rx, Duration::from_secs(10), |e| match e {
        TransportEvent::Connected {
            conn,
            peer_name,
            dialed,
            ..
        } => Some((*conn, peer_name.clone(), *dialed)),
        _ => None,
    })
    .await
}

/// Waits for a `Disconnected` event of `conn`; returns its reason.
pub(crate) async fn disconnected(rx: &mut Receiver<TransportEvent>, conn: ConnId) -> String {
    wait_for(rx, Duration::from_secs(10), |e| match e {
        TransportEvent::Disconnected { conn: c, reason } if *c == conn => Some(reason.clone()),
        _ => None,
    })
    .await
}

/// Waits for a frame; returns (conn, lane, bytes).
pub(crate) async fn frame(rx: &mut Receiver<TransportEvent>) -> (ConnId, Lane, Vec<u8>) {
    wait_for(rx, Duration::from_secs(10), |e| match e {
        TransportEvent::Frame { conn, lane, bytes } => Some((*conn, *lane, bytes.to_vec())),
        _ => None,
    })
    .await
}

/// Collects every event that arrives within `window`.
pub(crate) async fn drain(
    rx: &mut Receiver<TransportEvent>,
    window: Duration,
) -> Vec<TransportEvent> {
    let deadline = tokio::time::Instant::now() + window;
    let mut out = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.push(event);
    }
    out
}

/// Retries `f` until it returns true or `within` passes.
pub(crate) async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

fn pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A bare quinn client, outside the transport, for playing a misbehaving peer:
/// it trusts `ca_pem` (checking the server by the name it dials) and presents
/// `identity` (certificate and key PEM) if given.
pub(crate) fn raw_client(ca_pem: &str, identity: Option<(&str, &str)>) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(ca_pem) {
        roots.add(cert).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => {
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(pem_certs(cert), key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![tls::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(config).unwrap();
    let mut endpoint = quinn::Endpoint::client(localhost()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
    endpoint
}
