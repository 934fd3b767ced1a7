//! The `Check` RPC: the `Authorization` header out of Envoy's `CheckRequest`,
//! veto-api's gateway decision on it, and that decision written into a
//! `CheckResponse`.
//!
//! Envoy sends the original request's headers in one of two shapes: the map
//! `attributes.request.http.headers`, where it joins repeated headers with a
//! comma (`Bearer a,Bearer b`), or, with `encode_raw_headers: true`, the list
//! `header_map`, one entry per header line. Either way the decision sees what
//! `/v1/auth` would: one `Authorization` header, several, or a
//! comma-separated list, which it refuses as several.

use std::sync::{Arc, OnceLock};

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue as EnvoyHeader, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use tonic::{Code, Request, Response, Status};
use veto_api::{AuthDecision, GatewayAuth};

/// The `Authorization` headers of the request Envoy asks about, as the
/// gateway decision reads them. A value that is not a valid header value
/// (Envoy never sends one) is kept as an empty one, which the decision
/// refuses as not a Bearer token.
pub fn authorization(request: &CheckRequest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(http) = request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
    else {
        return headers;
    };
    let mut add = |value: &[u8]| {
        let value = HeaderValue::from_bytes(value).unwrap_or_else(|_| HeaderValue::from_static(""));
        headers.append(AUTHORIZATION, value);
    };
    match &http.header_map {
        Some(raw) if !raw.headers.is_empty() => {
            for h in raw.headers.iter().filter(|h| is_authorization(&h.key)) {
                add(raw_value(h));
            }
        }
        _ => {
            for (_, value) in http.headers.iter().filter(|(k, _)| is_authorization(k)) {
                add(value.as_bytes());
            }
        }
    }
    headers
}

fn is_authorization(name: &str) -> bool {
    name.eq_ignore_ascii_case(AUTHORIZATION.as_str())
}

/// A raw header's bytes: `raw_value`, or `value` from a sender that filled
/// that one in instead.
fn raw_value(h: &EnvoyHeader) -> &[u8] {
    if h.raw_value.is_empty() {
        h.value.as_bytes()
    } else {
        &h.raw_value
    }
}

/// Headers for Envoy to set, each replacing any of the same name.
fn header_options(headers: &[(http::HeaderName, HeaderValue)]) -> Vec<HeaderValueOption> {
    headers
        .iter()
        .map(|(name, value)| HeaderValueOption {
            header: Some(EnvoyHeader {
                key: name.as_str().to_owned(),
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                raw_value: Vec::new(),
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
            ..HeaderValueOption::default()
        })
        .collect()
}

/// The `CheckResponse` for a decision: `OK` with an `ok_response` when
/// allowed; otherwise `UNAUTHENTICATED` (`UNAVAILABLE` when the node cannot
/// judge yet or is stale under the `closed` policy) with a `denied_response`
/// holding the status, headers and body `/v1/auth` answers.
///
/// The `ok_response` is empty, except when the token was let through while
/// stale under the `open` policy: then it sets `Veto-Stale` on the request
/// Envoy sends the upstream (its `headers`), as `/v1/auth`'s 200 carries it
/// for the gateway. It is not added to the client's answer, which need not
/// learn the cluster's node names.
pub fn response(decision: &AuthDecision) -> CheckResponse {
    let (code, http_response) = match decision {
        AuthDecision::Allow => (
            Code::Ok,
            HttpResponse::OkResponse(OkHttpResponse::default()),
        ),
        AuthDecision::AllowStale(_) => (
            Code::Ok,
            HttpResponse::OkResponse(OkHttpResponse {
                headers: header_options(&decision.headers()),
                ..OkHttpResponse::default()
            }),
        ),
        denied => {
            let code = match denied {
                AuthDecision::Unavailable | AuthDecision::Stale(_) => Code::Unavailable,
                // Not asked over gRPC (it has no query), but named all the same.
                AuthDecision::BadRequest(_) => Code::InvalidArgument,
                _ => Code::Unauthenticated,
            };
            let headers = header_options(&denied.headers());
            let denied_response = DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(denied.status().as_u16()),
                }),
                headers,
                body: String::from_utf8_lossy(&denied.body()).into_owned(),
            };
            (code, HttpResponse::DeniedResponse(denied_response))
        }
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: code.into(),
            message: decision.message().to_owned(),
            details: Vec::new(),
        }),
        http_response: Some(http_response),
        ..CheckResponse::default()
    }
}

/// The `Authorization` service over the node's gateway check, which is set
/// once the node has loaded its state.
pub(crate) struct CheckService {
    gateway: Arc<OnceLock<GatewayAuth>>,
}

impl CheckService {
    pub(crate) fn new(gateway: Arc<OnceLock<GatewayAuth>>) -> CheckService {
        CheckService { gateway }
    }
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let decision = match self.gateway.get() {
            Some(gateway) => gateway.decide(&authorization(request.get_ref())),
            // Not counted, as the HTTP answers of a loading node are not.
            None => AuthDecision::Unavailable,
        };
        Ok(Response::new(response(&decision)))
    }
}
