//! Loading PEM files into the rustls configurations of a node.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_pemfile::Item;

use super::verify::{
    build_client_config, build_server_config, check_chain, count_rejection, peer_name_from_cert,
};
use super::TlsError;

/// The three files a node's transport needs (`--tls-ca`, `--tls-cert`, `--tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM), signed by the CA.
    pub cert: PathBuf,
    /// This node's private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// A node's loaded TLS identity: the CA it trusts and its own certificate, as
/// ready-made rustls server and client configurations for QUIC. Cheap to clone.
#[derive(Clone)]
pub struct ClusterTls {
    name: String,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    rejected: Arc<AtomicU64>,
    reset_seed: [u8; 32],
    cid_seed: [u8; 32],
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ClusterTls {
    /// Loads the CA, the certificate and the key. Fails with an error naming the
    /// file if one is missing or not PEM, if the key does not match the
    /// certificate, or if the certificate is not signed by the CA.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let ca = parse_certs(&read(&files.ca)?, &files.ca)?;
        let chain = parse_certs(&read(&files.cert)?, &files.cert)?;
        let key = parse_key(&read(&files.key)?, &files.key)?;
        Self::from_parts(ca, chain, key)
    }

    /// Like [`ClusterTls::load`], from PEM text held in memory.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let ca = parse_certs(ca_pem.as_bytes(), Path::new("<CA certificate>"))?;
        let chain = parse_certs(cert_pem.as_bytes(), Path::new("<node certificate>"))?;
        let key = parse_key(key_pem.as_bytes(), Path::new("<node key>"))?;
        Self::from_parts(ca, chain, key)
    }

    fn from_parts(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let leaf = chain.first().ok_or(TlsError::NoName)?;
        // A node whose own certificate is not from the CA would be refused by
        // every peer; say so at start-up rather than as a stream of rejections.
        check_chain(&ca, leaf).map_err(|e| {
            TlsError::NotTrusted(format!(
                "this node's certificate is not signed by the CA: {e}"
            ))
        })?;
        let name = peer_name_from_cert(leaf)?;
        let rejected = Arc::new(AtomicU64::new(0));
        let reset_seed = derive(&key, b"veto quic stateless reset key v1");
        let cid_seed = derive(&key, b"veto quic connection id key v1");
        let server = build_server_config(&ca, chain.clone(), key.clone_key(), &rejected)?;
        let client = build_client_config(&ca, chain, key, &rejected)?;
        Ok(ClusterTls {
            name,
            server: Arc::new(server),
            client: Arc::new(client),
            rejected,
            reset_seed,
            cid_seed,
        })
    }

    /// This node's name: the common name of its certificate.
    pub fn node_name(&self) -> &str {
        &self.name
    }

    /// The server side: requires a client certificate signed by the CA; ALPN `veto/1`.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// The client side: presents this node's certificate and accepts any server
    /// certificate signed by the CA, whatever its name; ALPN `veto/1`.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }

    /// The HMAC key for QUIC stateless reset tokens, stable across restarts.
    pub(crate) fn reset_key(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.reset_seed)
    }

    /// The key that signs this node's QUIC connection IDs, stable across restarts.
    pub(crate) fn cid_key(&self) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.cid_seed[..8]);
        u64::from_le_bytes(bytes)
    }

    /// Counts a peer that offered no certificate at all: rustls refuses it
    /// before any verifier runs, so the transport reports it from the failed
    /// handshake.
    pub(crate) fn count_missing_certificate(&self) {
        count_rejection(
            &self.rejected,
            "inbound",
            &"the peer presented no certificate",
        );
    }

    /// How many peers these configurations have refused for their certificate
    /// (missing, or not signed by the CA), both directions together.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// Derives a secret from the node's private key (HMAC-SHA256 keyed by it), so
/// that it is the same after a restart.
///
/// Two QUIC secrets need that: the key of stateless reset tokens and the key
/// that signs connection IDs. With both stable, a node that crashed and came
/// back recognises packets of its old connections as its own and answers them
/// with a stateless reset, and peers drop those connections at once instead of
/// after the idle timeout (which matters because the tie-break may keep the
/// stale connection over the restarted node's new one until then). HMAC is
/// one-way, so the derived values reveal nothing about the key.
fn derive(key: &PrivateKeyDer<'_>, label: &[u8]) -> [u8; 32] {
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.secret_der()),
        label,
    );
    let mut out = [0u8; 32];
    out.copy_from_slice(&tag.as_ref()[..32]);
    out
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::io(path, e))
}

fn pem_items(pem: &[u8], path: &Path) -> Result<Vec<Item>, TlsError> {
    rustls_pemfile::read_all(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

fn describe(items: &[Item]) -> String {
    match items.first() {
        None => String::new(),
        Some(Item::X509Certificate(_)) => " (the file holds a certificate)".into(),
        Some(Item::Pkcs1Key(_) | Item::Pkcs8Key(_) | Item::Sec1Key(_)) => {
            " (the file holds a private key)".into()
        }
        Some(_) => " (the file holds some other PEM block)".into(),
    }
}

/// Every certificate in a PEM file, in order.
pub(crate) fn parse_certs(
    pem: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let items = pem_items(pem, path)?;
    let certs: Vec<_> = items
        .iter()
        .filter_map(|item| match item {
            Item::X509Certificate(der) => Some(der.clone()),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NotPem {
            path: path.to_owned(),
            expected: "certificate",
            hint: describe(&items),
        });
    }
    Ok(certs)
}

/// The single private key in a PEM file. A file with a certificate but no key,
/// or with two keys, is refused.
pub(crate) fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let items = pem_items(pem, path)?;
    let mut keys = items.iter().filter_map(|item| match item {
        Item::Pkcs8Key(k) => Some(PrivateKeyDer::Pkcs8(k.clone_key())),
        Item::Sec1Key(k) => Some(PrivateKeyDer::Sec1(k.clone_key())),
        Item::Pkcs1Key(k) => Some(PrivateKeyDer::Pkcs1(k.clone_key())),
        _ => None,
    });
    let key = keys.next().ok_or_else(|| TlsError::NotPem {
        path: path.to_owned(),
        expected: "private key",
        hint: describe(&items),
    })?;
    if keys.next().is_some() {
        return Err(TlsError::Unsupported {
            what: path.display().to_string(),
            detail: "more than one private key in the file".into(),
        });
    }
    // Refuse key types the crypto provider cannot sign with now, not at the
    // first handshake.
    rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::Unsupported {
            what: path.display().to_string(),
            detail: format!("unsupported private key: {e}"),
        })?;
    Ok(key)
}
