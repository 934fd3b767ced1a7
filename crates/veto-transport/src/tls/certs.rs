//! Making the cluster CA and node certificates, and writing them to disk.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use rustls::pki_types::CertificateDer;

use super::load::{parse_certs, parse_key};
use super::verify::check_chain;
use super::TlsError;

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// How long a CA is valid: ten years.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How many days a node certificate is valid unless asked otherwise
/// (`veto cert node --days`). Short, because a node certificate is rotated
/// by running `veto cert node` again and restarting the node, and the old
/// one revoked with `veto peers revoke-cert`.
pub const DEFAULT_NODE_DAYS: u32 = 90;
/// The longest validity a node certificate may be given: the CA's own.
pub const MAX_NODE_DAYS: u32 = 3650;
/// Certificates start being valid a day in the past, so a node whose clock is
/// behind the machine that made the certificate still accepts it.
const BACKDATE: Duration = Duration::days(1);

/// A certificate and its private key, both PEM-encoded.
#[derive(Clone)]
pub struct CertPair {
    /// The certificate (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// The private key, PKCS#8 (`-----BEGIN PRIVATE KEY-----`). Secret.
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Where [`write_ca`] or [`write_node`] put a certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file (mode 0600 on Unix).
    pub key: PathBuf,
}

/// Makes a self-signed cluster CA (ECDSA P-256) that may sign node certificates
/// but no further CAs.
pub fn generate_ca(common_name: &str) -> Result<CertPair, TlsError> {
    if common_name.trim().is_empty() {
        return Err(TlsError::InvalidName {
            name: common_name.to_owned(),
            reason: "the CA's common name must not be empty",
        });
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name_with_cn(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Makes a node certificate signed by the CA, valid for
/// [`DEFAULT_NODE_DAYS`]. The node name is the common name and a DNS SAN; the
/// certificate serves both as TLS server and TLS client certificate. Fails if
/// the CA key does not belong to the CA certificate.
pub fn generate_node_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node_name: &str,
) -> Result<CertPair, TlsError> {
    generate_node_cert_for(ca_cert_pem, ca_key_pem, node_name, DEFAULT_NODE_DAYS)
}

/// Like [`generate_node_cert`], valid for `days` (1 to [`MAX_NODE_DAYS`]).
pub fn generate_node_cert_for(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node_name: &str,
    days: u32,
) -> Result<CertPair, TlsError> {
    validate_node_name(node_name)?;
    if !(1..=MAX_NODE_DAYS).contains(&days) {
        return Err(TlsError::Config(format!(
            "a node certificate is valid for 1 to {MAX_NODE_DAYS} days, not {days}"
        )));
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| TlsError::Unsupported {
        what: "CA private key".into(),
        detail: e.to_string(),
    })?;
    let issuer =
        Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(|e| TlsError::Unsupported {
            what: "CA certificate".into(),
            detail: e.to_string(),
        })?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name_with_cn(node_name);
    params.subject_alt_names = vec![SanType::DnsName(node_name.try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, Duration::days(i64::from(days)));
    let cert = params.signed_by(&key, &issuer)?;

    // A CA key that does not belong to the CA certificate still "signs", but the
    // result would be refused by every peer; catch that here, not at run time.
    let ca_certs = parse_certs(ca_cert_pem.as_bytes(), Path::new("CA certificate"))?;
    check_chain(&ca_certs, cert.der()).map_err(|e| {
        TlsError::NotTrusted(format!(
            "the new certificate does not verify against the CA ({e}); \
             does the CA key belong to the CA certificate?"
        ))
    })?;

    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Checks that `name` can be a node name: a DNS name of letters, digits, `-`
/// and `.` (at most 253 bytes, labels at most 63), and not `ca`, which would
/// collide with the CA's files.
pub fn validate_node_name(name: &str) -> Result<(), TlsError> {
    let bad = |reason| {
        Err(TlsError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return bad("only ASCII letters, digits, '-' and '.' are allowed");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated part must be 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a dot-separated part must not start or end with '-'");
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return bad("must not look like an IP address");
    }
    if name.eq_ignore_ascii_case("ca") {
        return bad("'ca' is reserved for the CA's own files");
    }
    Ok(())
}

/// Makes a CA with the common name "veto cluster CA" and writes `ca.pem` and
/// `ca.key` (mode 0600) into `dir`, creating it if needed.
///
/// Existing files are replaced only when `overwrite` is true: replacing a CA
/// orphans every node certificate it signed, so it must be deliberate.
pub fn write_ca(dir: &Path, overwrite: bool) -> Result<CertPaths, TlsError> {
    let paths = CertPaths {
        cert: dir.join(CA_CERT_FILE),
        key: dir.join(CA_KEY_FILE),
    };
    refuse_existing(&paths, overwrite)?;
    let pair = generate_ca("veto cluster CA")?;
    write_pair(dir, &paths, &pair)?;
    Ok(paths)
}

/// Reads `ca.pem` and `ca.key` from `ca_dir`, makes a certificate for `name`
/// valid for [`DEFAULT_NODE_DAYS`] and writes `NAME.pem` and `NAME.key`
/// (mode 0600) into `out_dir`, creating it if needed. Existing files are
/// replaced only when `overwrite` is true.
pub fn write_node(
    ca_dir: &Path,
    name: &str,
    out_dir: &Path,
    overwrite: bool,
) -> Result<CertPaths, TlsError> {
    write_node_for(ca_dir, name, out_dir, overwrite, DEFAULT_NODE_DAYS)
}

/// Like [`write_node`], with a certificate valid for `days` (1 to
/// [`MAX_NODE_DAYS`]).
pub fn write_node_for(
    ca_dir: &Path,
    name: &str,
    out_dir: &Path,
    overwrite: bool,
    days: u32,
) -> Result<CertPaths, TlsError> {
    validate_node_name(name)?;
    let paths = CertPaths {
        cert: out_dir.join(format!("{name}.pem")),
        key: out_dir.join(format!("{name}.key")),
    };
    refuse_existing(&paths, overwrite)?;
    let ca_cert = read_text(&ca_dir.join(CA_CERT_FILE))?;
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_key = read_text(&ca_key_path)?;
    // Parse the key ourselves first for a clear error naming the file.
    parse_key(ca_key.as_bytes(), &ca_key_path)?;
    let pair = generate_node_cert_for(&ca_cert, &ca_key, name, days)?;
    write_pair(out_dir, &paths, &pair)?;
    Ok(paths)
}

/// The SHA-256 of a certificate's DER encoding: its fingerprint, by which
/// `veto peers revoke-cert` revokes exactly that certificate.
pub fn cert_sha256(cert: &CertificateDer<'_>) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut sha = [0u8; 32];
    sha.copy_from_slice(digest.as_ref());
    sha
}

/// The fingerprint ([`cert_sha256`]) of the first certificate in the PEM file
/// at `path`: a node's own.
pub fn cert_file_sha256(path: &Path) -> Result<[u8; 32], TlsError> {
    let pem = read_text(path)?;
    let certs = parse_certs(pem.as_bytes(), path)?;
    let leaf = certs.first().ok_or_else(|| TlsError::NotPem {
        path: path.to_owned(),
        expected: "certificate",
        hint: String::new(),
    })?;
    Ok(cert_sha256(leaf))
}

fn name_with_cn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    let serial: [u8; 16] = rand::random();
    // Clear the top bit so the DER integer stays positive and 16 bytes long.
    let mut serial = serial.to_vec();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

fn refuse_existing(paths: &CertPaths, overwrite: bool) -> Result<(), TlsError> {
    if overwrite {
        return Ok(());
    }
    for path in [&paths.cert, &paths.key] {
        if path.exists() {
            return Err(TlsError::Exists { path: path.clone() });
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|e| TlsError::io(path, e))
}

fn write_pair(dir: &Path, paths: &CertPaths, pair: &CertPair) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|e| TlsError::io(dir, e))?;
    // Key first: a certificate without its key is useless, and a crash between
    // the two writes should not leave a pair that looks complete.
    write_file(&paths.key, pair.key_pem.as_bytes(), 0o600)?;
    write_file(&paths.cert, pair.cert_pem.as_bytes(), 0o644)
}

/// Writes through a temporary file and a rename, so a reader never sees half a
/// file, and creates the temporary file with its final mode so a key is never
/// readable by others, not even for a moment.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = options.open(&tmp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    if let Err(e) = result.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(TlsError::io(path, e));
    }
    Ok(())
}
