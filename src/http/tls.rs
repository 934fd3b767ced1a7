//! HTTPS on the API: rustls on the ring provider (as the gossip transport),
//! HTTP/1.1 and h2 by ALPN, within the same accept loop and limits as plain
//! HTTP (see [`super::conn`]).
//!
//! With `--api-tls-client-ca`, clients are asked for a certificate and one
//! that is presented must chain to that CA, or the handshake fails. It is
//! not required at the handshake: gateways that only look tokens up need
//! none, and the writes are refused per request instead (see
//! [`super::client_cert`]).
//!
//! The certificate, key and client CA are read again on SIGHUP and used by
//! new connections from then on; open connections keep what they were
//! accepted with. Files that do not load are refused as a whole, with an
//! error in the log, and the node keeps serving what it had.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{bail, Context as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::serve::api_tls_args::ApiTlsPaths;

/// The ALPN protocols offered, h2 first: a client that speaks both gets one
/// connection for many concurrent lookups.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

const RELOADS: &str = "veto_api_tls_reloads_total";

/// The API's TLS configuration in force, and where it is read from.
pub(crate) struct ApiTls {
    paths: ApiTlsPaths,
    config: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl ApiTls {
    /// Loads the files; fails naming the one that is missing or wrong.
    pub(crate) fn load(paths: &ApiTlsPaths) -> anyhow::Result<ApiTls> {
        Ok(ApiTls {
            config: RwLock::new(Arc::new(server_config(paths)?)),
            paths: paths.clone(),
        })
    }

    /// An acceptor with the configuration in force now.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let config = self.config.read().unwrap_or_else(PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&config))
    }

    /// Whether writes need a verified client certificate.
    pub(crate) fn client_certificates(&self) -> bool {
        self.paths.client_ca.is_some()
    }

    /// Reads the files again; on success new connections use them.
    fn reload(&self) -> anyhow::Result<()> {
        let config = Arc::new(server_config(&self.paths)?);
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// Reloads the files on every SIGHUP for as long as the node runs. A
    /// node serving HTTPS thereby takes SIGHUP over even without
    /// `--config`: a certificate renewal must not end the process.
    pub(crate) fn reload_on_hangup(self: &Arc<Self>) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup =
            signal(SignalKind::hangup()).context("cannot listen for SIGHUP (API TLS reload)")?;
        for result in ["ok", "error"] {
            metrics::counter!(RELOADS, "result" => result).increment(0);
        }
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let result = match tls.reload() {
                    Ok(()) => {
                        tracing::info!(cert = %tls.paths.cert.display(), "API TLS certificate reloaded");
                        "ok"
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "API TLS reload refused; the certificate in use stays");
                        "error"
                    }
                };
                metrics::counter!(RELOADS, "result" => result).increment(1);
            }
        });
        Ok(())
    }
}

/// The rustls server configuration of these files.
pub(crate) fn server_config(paths: &ApiTlsPaths) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&paths.cert, "--api-tls-cert")?;
    let key = read_key(&paths.key)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("the TLS provider supports no protocol version")?;
    let builder = match &paths.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca, "--api-tls-client-ca")? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .with_context(|| format!("{}: cannot verify clients with it", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "{} and {} are not a usable certificate and key (does the key belong to the certificate?)",
            paths.cert.display(),
            paths.key.display()
        )
    })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn open(path: &Path, what: &str) -> anyhow::Result<BufReader<File>> {
    let file =
        File::open(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(BufReader::new(file))
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut open(path, what)?)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what} {}: not PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{what} {}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

/// The first private key in a PEM file.
fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let what = "--api-tls-key";
    rustls_pemfile::private_key(&mut open(path, what)?)
        .with_context(|| format!("{what} {}: not PEM", path.display()))?
        .with_context(|| format!("{what} {}: no PEM private key in it", path.display()))
}

/// Warns when the API is served in the clear on an address other hosts can
/// reach: bearer tokens and revocations would cross the network readable.
pub(crate) fn warn_if_plaintext(addr: std::net::SocketAddr) {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            listen = %addr,
            "the HTTP API is served without TLS on a non-loopback address: admin tokens and revocations cross the network in the clear; give --api-tls-cert and --api-tls-key (and --api-tls-client-ca to require client certificates for writes)"
        );
    }
}
