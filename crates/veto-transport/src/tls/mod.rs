//! The cluster's certificates and the mutual-TLS configuration of the transport.
//!
//! Trust model: **membership of the cluster is the cluster CA.** Every node holds a
//! certificate signed by that CA whose common name (and DNS SAN) is the node's name.
//! Both ends of a gossip connection present their certificate and both verify the
//! other's chain against the CA:
//!
//! - the accepting side requires a client certificate (rustls `WebPkiClientVerifier`);
//! - the dialling side checks the server's chain against the CA but does **not** check
//!   the host name, because peers are dialled by an operator-configured address and the
//!   peer's name is only learned from its certificate. Any node the CA vouches for is an
//!   acceptable peer; the name found in its certificate is what identifies it.
//!
//! A peer whose certificate does not chain to the CA is refused inside the TLS
//! handshake, before any application data is read, and counted in
//! `veto_gossip_tls_rejected_total` (and [`ClusterTls::rejected`]).
//!
//! Being signed by the CA is necessary, not sufficient: right after the
//! handshake, before any lane opens, the transport asks the node's
//! [`Admission`](crate::Admission) whether this certificate (by its name and
//! its SHA-256, [`cert_sha256`]) may be a peer, which is where the peer list
//! and revoked node certificates are enforced.
//!
//! [`generate_ca`] and [`generate_node_cert`] make the certificates (ECDSA P-256);
//! [`write_ca`] and [`write_node`] back `veto cert ca` and `veto cert node`.

mod certs;
mod load;
mod verify;

use std::path::{Path, PathBuf};

pub use certs::{
    cert_file_sha256, cert_sha256, generate_ca, generate_node_cert, generate_node_cert_for,
    validate_node_name, write_ca, write_node, write_node_for, CertPair, CertPaths, CA_CERT_FILE,
    CA_KEY_FILE, DEFAULT_NODE_DAYS, MAX_NODE_DAYS,
};
pub use load::{ClusterTls, TlsFiles};
pub use verify::peer_name_from_cert;

/// The ALPN protocol identifier of veto's gossip transport.
pub const ALPN: &[u8] = b"veto/1";

/// What went wrong making, loading or using certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file that should exist does not.
    #[error("{path}: file not found")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no PEM block of the expected kind.
    #[error("{path}: no PEM {expected} found{hint}")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was expected: "certificate" or "private key".
        expected: &'static str,
        /// Extra detail on what was found instead (may be empty).
        hint: String,
    },
    /// A PEM file is malformed.
    #[error("{path}: malformed PEM: {detail}")]
    BadPem {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },
    /// A certificate or key could not be parsed or is of an unsupported type.
    #[error("{what}: {detail}")]
    Unsupported {
        /// What was being parsed.
        what: String,
        /// Why it was refused.
        detail: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,
    /// A certificate is not signed by the cluster CA (or is otherwise invalid).
    #[error("certificate is not valid for this cluster: {0}")]
    NotTrusted(String),
    /// A certificate carries no usable node name.
    #[error("certificate has no common name or DNS name")]
    NoName,
    /// A node name that cannot be used in a certificate or a file name.
    #[error("invalid node name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Writing would replace an existing file and overwriting was not asked for.
    #[error(
        "{path} already exists; refusing to overwrite it (pass the overwrite flag to replace it)"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    /// A failed read or write of `path`: `Missing` when it does not exist.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> TlsError {
        if source.kind() == std::io::ErrorKind::NotFound {
            TlsError::Missing {
                path: path.to_owned(),
            }
        } else {
            TlsError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch
            }
            other => TlsError::Config(other.to_string()),
        }
    }
}
