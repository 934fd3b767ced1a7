//! Flags of `veto serve` that put the HTTP API behind TLS. They are flattened
//! into `ServeArgs`; `--config` takes the same names in snake_case
//! (`api_tls_cert`, `api_tls_key`, `api_tls_client_ca`).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

/// HTTPS on the HTTP API.
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct ApiTlsArgs {
    /// Serve the HTTP API over HTTPS (HTTP/1.1 and h2) with this certificate
    /// chain (PEM, leaf first); needs --api-tls-key. Reloaded on SIGHUP
    /// [default: plain HTTP].
    #[arg(long, env = "VETO_API_TLS_CERT", value_name = "FILE")]
    pub(crate) api_tls_cert: Option<PathBuf>,
    /// The private key of --api-tls-cert (PEM: PKCS#8, SEC1 or PKCS#1).
    #[arg(long, env = "VETO_API_TLS_KEY", value_name = "FILE")]
    pub(crate) api_tls_key: Option<PathBuf>,
    /// Ask HTTPS clients for a certificate and verify it against this CA
    /// (PEM). A client may still connect without one, for lookups; a write
    /// or admin change on such a connection is refused with 403
    /// `client_certificate_required`. Needs --api-tls-cert.
    #[arg(long, env = "VETO_API_TLS_CLIENT_CA", value_name = "FILE")]
    pub(crate) api_tls_client_ca: Option<PathBuf>,
}

/// Where the API's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiTlsPaths {
    /// The certificate chain, leaf first.
    pub(crate) cert: PathBuf,
    /// Its private key.
    pub(crate) key: PathBuf,
    /// The CA that client certificates are verified against, if any.
    pub(crate) client_ca: Option<PathBuf>,
}

impl ApiTlsArgs {
    /// The flags (and environment) over the file's `api_tls_cert`,
    /// `api_tls_key` and `api_tls_client_ca`, each key on its own; then
    /// checked to make sense together and loaded once, so that a bad file
    /// is named at start (and by `veto config check`), not at the first
    /// handshake.
    pub(crate) fn resolve(
        &self,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> anyhow::Result<Option<ApiTlsPaths>> {
        let cert = self.api_tls_cert.clone().or(cert);
        let key = self.api_tls_key.clone().or(key);
        let client_ca = self.api_tls_client_ca.clone().or(client_ca);
        let paths = match (cert, key) {
            (Some(cert), Some(key)) => ApiTlsPaths {
                cert,
                key,
                client_ca,
            },
            (None, None) if client_ca.is_some() => bail!(
                "--api-tls-client-ca (`api_tls_client_ca`) needs --api-tls-cert and --api-tls-key: \
                 client certificates are asked for in the TLS handshake"
            ),
            (None, None) => return Ok(None),
            (Some(_), None) => bail!(
                "--api-tls-cert (`api_tls_cert`) needs --api-tls-key (`api_tls_key`): give both or neither"
            ),
            (None, Some(_)) => bail!(
                "--api-tls-key (`api_tls_key`) needs --api-tls-cert (`api_tls_cert`): give both or neither"
            ),
        };
        crate::serve::http::tls::server_config(&paths)?;
        Ok(Some(paths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_and_key_go_together() {
        let none = ApiTlsArgs::default();
        assert_eq!(none.resolve(None, None, None).unwrap(), None);
        let e = none.resolve(Some("c.pem".into()), None, None).unwrap_err();
        assert!(e.to_string().contains("needs --api-tls-key"), "{e}");
        let e = none.resolve(None, Some("k.pem".into()), None).unwrap_err();
        assert!(e.to_string().contains("needs --api-tls-cert"), "{e}");
        let e = none.resolve(None, None, Some("ca.pem".into())).unwrap_err();
        assert!(e.to_string().contains("--api-tls-client-ca"), "{e}");
    }
}
