//! Certificate verification for both ends of a gossip connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::{TlsError, ALPN};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert.clone()).map_err(|e| TlsError::Unsupported {
            what: "CA certificate".into(),
            detail: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Checks that `leaf` chains to one of the `ca` certificates and is valid now.
pub(crate) fn check_chain(
    ca: &[CertificateDer<'static>],
    leaf: &CertificateDer<'_>,
) -> Result<(), TlsError> {
    let roots = roots(ca)?;
    let parsed =
        ParsedCertificate::try_from(leaf).map_err(|e| TlsError::NotTrusted(e.to_string()))?;
    verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        &[],
        UnixTime::now(),
        provider().signature_verification_algorithms.all,
    )
    .map_err(|e| TlsError::NotTrusted(e.to_string()))
}

/// The node name a certificate carries: its subject common name, or failing
/// that its first DNS subject alternative name.
pub fn peer_name_from_cert(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::Unsupported {
            what: "certificate".into(),
            detail: e.to_string(),
        })?;
    if let Some(cn) = parsed
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
    {
        return Ok(cn.to_owned());
    }
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                return Ok((*dns).to_owned());
            }
        }
    }
    Err(TlsError::NoName)
}

pub(crate) fn count_rejection(
    counter: &AtomicU64,
    direction: &'static str,
    error: &dyn std::fmt::Display,
) {
    counter.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("veto_gossip_tls_rejected_total", "direction" => direction).increment(1);
    tracing::warn!(direction, %error, "refused a peer's certificate during the TLS handshake");
}

pub(crate) fn build_server_config(
    ca: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    rejected: &Arc<AtomicU64>,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = CountingClientVerifier {
        inner,
        rejected: rejected.clone(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // No resumption: every connection shows its certificate and is checked
    // against the CA in force, and peers connect rarely enough not to care.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

pub(crate) fn build_client_config(
    ca: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    rejected: &Arc<AtomicU64>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = ClusterServerVerifier {
        roots: Arc::new(roots(ca)?),
        provider: provider.clone(),
        rejected: rejected.clone(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Accepts any server certificate that chains to the cluster CA, whatever name
/// it was dialled by.
///
/// The host-name check is skipped on purpose: peers are dialled by an address
/// an operator configured, and the dialler does not know which node answers
/// there until it reads the certificate. Being signed by the cluster CA is what
/// makes a node a member; the name in its certificate is then how it is known.
#[derive(Debug)]
struct ClusterServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    rejected: Arc<AtomicU64>,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        ParsedCertificate::try_from(end_entity)
            .and_then(|cert| {
                verify_server_cert_signed_by_trust_anchor(
                    &cert,
                    &self.roots,
                    intermediates,
                    now,
                    self.provider.signature_verification_algorithms.all,
                )
            })
            .map(|()| ServerCertVerified::assertion())
            .inspect_err(|e| count_rejection(&self.rejected, "outbound", e))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// rustls' own client verifier, counting what it refuses.
#[derive(Debug)]
struct CountingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    rejected: Arc<AtomicU64>,
}

impl ClientCertVerifier for CountingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| count_rejection(&self.rejected, "inbound", e))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
