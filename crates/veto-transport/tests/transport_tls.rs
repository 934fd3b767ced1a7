//! Certificates: what `veto cert` writes, and how loading them fails.

mod transport_support;

use std::path::Path;

use transport_support::Cluster;
use veto_transport::tls::{
    self, generate_ca, generate_node_cert, peer_name_from_cert, validate_node_name, ClusterTls,
    TlsError, TlsFiles,
};
use x509_parser::extensions::GeneralName;

fn der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

#[test]
fn a_node_certificate_names_the_node_and_serves_both_roles() {
    let ca = generate_ca("test CA").unwrap();
    let node = generate_node_cert(&ca.cert_pem, &ca.key_pem, "eu-west-1").unwrap();
    let cert = der(&node.cert_pem);
    assert_eq!(peer_name_from_cert(&cert).unwrap(), "eu-west-1");

    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    assert!(san
        .value
        .general_names
        .contains(&GeneralName::DNSName("eu-west-1")));
    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!parsed.is_ca());
    let ca_der = der(&ca.cert_pem);
    let (_, ca_parsed) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(ca_parsed.is_ca());
    assert_eq!(parsed.issuer(), ca_parsed.subject());

    let loaded = ClusterTls::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap();
    assert_eq!(loaded.node_name(), "eu-west-1");
    assert_eq!(
        loaded.server_config().alpn_protocols,
        vec![b"veto/1".to_vec()]
    );
    assert_eq!(
        loaded.client_config().alpn_protocols,
        vec![b"veto/1".to_vec()]
    );
}

#[test]
fn a_node_certificate_lasts_the_days_asked_and_the_ca_its_own() {
    let ca = generate_ca("test CA").unwrap();
    let lifetime = |pem: &str| {
        let cert = der(pem);
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let v = parsed.validity();
        // Backdated by a day, so that a node whose clock is behind accepts it.
        (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400 - 1
    };
    let default = generate_node_cert(&ca.cert_pem, &ca.key_pem, "n").unwrap();
    assert_eq!(
        lifetime(&default.cert_pem),
        i64::from(tls::DEFAULT_NODE_DAYS)
    );
    let short = tls::generate_node_cert_for(&ca.cert_pem, &ca.key_pem, "n", 7).unwrap();
    assert_eq!(lifetime(&short.cert_pem), 7);
    assert_eq!(lifetime(&ca.cert_pem), 3650);
    for days in [0, tls::MAX_NODE_DAYS + 1] {
        let err = tls::generate_node_cert_for(&ca.cert_pem, &ca.key_pem, "n", days).unwrap_err();
        assert!(err.to_string().contains("1 to 3650 days"), "{err}");
    }
    // The fingerprint is the SHA-256 of the DER certificate.
    let cert = der(&short.cert_pem);
    let sha = tls::cert_sha256(&cert);
    assert_eq!(
        sha.as_slice(),
        ring::digest::digest(&ring::digest::SHA256, cert.as_ref()).as_ref()
    );
}

#[test]
fn bad_node_names_are_refused() {
    for name in [
        "", "ca", "CA", "a/b", "../x", "-x", "x-", "a..b", "10.0.0.1", "é", "a b",
    ] {
        assert!(
            matches!(validate_node_name(name), Err(TlsError::InvalidName { .. })),
            "{name:?} accepted"
        );
    }
    for name in ["alpha", "eu-west-1", "node1.example", "n"] {
        validate_node_name(name).unwrap();
    }
    let ca = generate_ca("test CA").unwrap();
    assert!(generate_node_cert(&ca.cert_pem, &ca.key_pem, "a/b").is_err());
}

#[test]
fn a_ca_key_that_does_not_match_its_certificate_is_caught() {
    let ca = generate_ca("test CA").unwrap();
    let other = generate_ca("other CA").unwrap();
    let err = generate_node_cert(&ca.cert_pem, &other.key_pem, "alpha").unwrap_err();
    assert!(matches!(err, TlsError::NotTrusted(_)), "{err}");
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn cert_files_are_written_private_and_never_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ca = tls::write_ca(dir.path(), false).unwrap();
    assert_eq!(ca.cert, dir.path().join("ca.pem"));
    assert_eq!(ca.key, dir.path().join("ca.key"));
    let out = dir.path().join("nodes");
    let node = tls::write_node(dir.path(), "alpha", &out, false).unwrap();
    assert_eq!(node.cert, out.join("alpha.pem"));
    assert_eq!(node.key, out.join("alpha.key"));
    #[cfg(unix)]
    {
        assert_eq!(mode(&ca.key), 0o600);
        assert_eq!(mode(&node.key), 0o600);
    }

    let ca_key = std::fs::read(&ca.key).unwrap();
    let err = tls::write_ca(dir.path(), false).unwrap_err();
    assert!(matches!(err, TlsError::Exists { .. }), "{err}");
    assert_eq!(std::fs::read(&ca.key).unwrap(), ca_key, "CA key changed");
    let node_key = std::fs::read(&node.key).unwrap();
    let err = tls::write_node(dir.path(), "alpha", &out, false).unwrap_err();
    assert!(matches!(err, TlsError::Exists { .. }), "{err}");
    assert_eq!(std::fs::read(&node.key).unwrap(), node_key);

    tls::write_node(dir.path(), "alpha", &out, true).unwrap();
    assert_ne!(std::fs::read(&node.key).unwrap(), node_key);
    tls::write_ca(dir.path(), true).unwrap();
    assert_ne!(std::fs::read(&ca.key).unwrap(), ca_key);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn write_node_reports_a_missing_ca_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = tls::write_node(dir.path(), "alpha", dir.path(), false).unwrap_err();
    match err {
        TlsError::Missing { path } => assert_eq!(path, dir.path().join("ca.pem")),
        other => panic!("{other}"),
    }
}

#[test]
fn loading_fails_clearly() {
    let cluster = Cluster::new();
    let good = cluster.files("alpha");
    let load = |ca: &Path, cert: &Path, key: &Path| {
        ClusterTls::load(&TlsFiles {
            ca: ca.to_owned(),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
        .unwrap_err()
    };
    let missing = cluster.dir.path().join("nope.pem");
    let garbage = cluster.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello, not a certificate\n").unwrap();

    let err = load(&missing, &good.cert, &good.key);
    assert!(
        matches!(&err, TlsError::Missing { path } if path == &missing),
        "{err}"
    );
    assert!(err.to_string().contains("nope.pem"));

    let err = load(&good.ca, &garbage, &good.key);
    assert!(
        matches!(
            err,
            TlsError::NotPem {
                expected: "certificate",
                ..
            }
        ),
        "{err}"
    );

    // A certificate where the key should be: say what was found.
    let err = load(&good.ca, &good.cert, &good.cert);
    assert!(
        matches!(
            err,
            TlsError::NotPem {
                expected: "private key",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("holds a certificate"), "{err}");

    let beta = cluster.files("beta");
    let err = load(&good.ca, &good.cert, &beta.key);
    assert!(matches!(err, TlsError::KeyMismatch), "{err}");

    let other = Cluster::new();
    let err = load(&other.files("x").ca, &good.cert, &good.key);
    assert!(matches!(err, TlsError::NotTrusted(_)), "{err}");

    let ok = ClusterTls::load(&good).unwrap();
    assert_eq!(ok.node_name(), "alpha");
    assert_eq!(ok.rejected(), 0);
}
