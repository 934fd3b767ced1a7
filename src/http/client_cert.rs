//! `--api-tls-client-ca`: writes need a client certificate.
//!
//! Every request of an HTTPS connection carries a [`TlsClient`] extension,
//! set once per connection from its handshake. When the node asks for
//! client certificates, a request that changes something (any method but
//! `GET`, `HEAD` and `OPTIONS`, so revocations, batches, RFC 7009
//! revocation, Security Event Tokens, peer changes and whatever write comes
//! next) is refused with 403 `client_certificate_required` unless its
//! connection presented a certificate that chains to that CA. The lookups
//! (`/v1/check`, whose batch is a `POST`, and `/v1/auth`, which gateways ask
//! with the original method) stay open to every client, as without TLS.
//!
//! The check runs before the rate limits, so that a client without a
//! certificate cannot use up the write budget of a bearer token it holds.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use axum::response::IntoResponse as _;
use rustls::pki_types::CertificateDer;

/// The error code of the refusal.
pub(crate) const CODE: &str = "client_certificate_required";

/// What the TLS handshake of a request's connection proved about its client.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsClient {
    /// The client's own certificate, verified against `--api-tls-client-ca`;
    /// `None` when it presented none (or none was asked for).
    pub(crate) certificate: Option<Arc<CertificateDer<'static>>>,
}

/// Whether this request needs a verified client certificate.
pub(crate) fn needs_certificate(method: &Method, path: &str) -> bool {
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let lookup = path == "/v1/check" || path == "/v1/auth" || path.starts_with("/v1/auth/");
    !reads && !lookup
}

/// The 403 for a write on a connection without a verified client
/// certificate, or `None` when the request may go on.
pub(crate) fn refusal(
    method: &Method,
    path: &str,
    client: Option<&TlsClient>,
) -> Option<Response<Body>> {
    let verified = client.is_some_and(|c| c.certificate.is_some());
    if verified || !needs_certificate(method, path) {
        return None;
    }
    metrics::counter!("veto_http_client_certificate_refused_total").increment(1);
    let error = veto_api::ApiError::new(
        StatusCode::FORBIDDEN,
        CODE,
        format!(
            "{method} {path} needs a client certificate signed by this node's --api-tls-client-ca; \
             this connection presented none"
        ),
    );
    Some(error.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_need_a_certificate_and_lookups_do_not() {
        for (method, path) in [
            (Method::POST, "/v1/revocations"),
            (Method::POST, "/v1/revocations/batch"),
            (Method::POST, "/oauth2/revoke"),
            (Method::POST, "/v1/events"),
            (Method::POST, "/v1/peers"),
            (Method::DELETE, "/v1/peers/eu-1"),
            (Method::PUT, "/anything"),
        ] {
            assert!(needs_certificate(&method, path), "{method} {path}");
            let r = refusal(&method, path, Some(&TlsClient::default())).unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
        }
        for (method, path) in [
            (Method::GET, "/v1/check"),
            (Method::POST, "/v1/check"),
            (Method::POST, "/v1/auth/orders"),
            (Method::DELETE, "/v1/auth"),
            (Method::GET, "/v1/revocations"),
            (Method::GET, "/v1/status"),
        ] {
            assert!(!needs_certificate(&method, path), "{method} {path}");
        }
        let cert = TlsClient {
            certificate: Some(Arc::new(CertificateDer::from(vec![1, 2, 3]))),
        };
        assert!(refusal(&Method::POST, "/v1/revocations", Some(&cert)).is_none());
    }
}
