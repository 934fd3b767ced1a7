//! The hot routes, answered without the router: `GET /v1/check` and
//! `GET /v1/auth`, the requests a gateway sends for every request it
//! serves.
//!
//! Each answer is exactly the router's for the same request; the server
//! that holds a [`HotRoutes`] asks it first and hands every other request
//! to the router. What is skipped is per-request machinery these two do
//! not need: route matching, the request-extension map, the body limit
//! (neither reads a body) and the trace span, whose work was a measurable
//! share of a lookup's cost. A server error among their answers is still
//! logged as the trace layer would.

use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse as _, Response};

use crate::stale::STALE_HEADER;
use crate::state::AppState;

/// The hot routes of one API (see the module's documentation).
#[derive(Clone)]
pub struct HotRoutes {
    state: AppState,
}

impl HotRoutes {
    pub(crate) fn new(state: AppState) -> HotRoutes {
        HotRoutes { state }
    }

    /// The answer to a request for a hot route, or `None` for any other
    /// request, which the router answers.
    pub fn answer(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        if method != Method::GET {
            return None;
        }
        let path = uri.path();
        let response = if path == "/v1/check" {
            crate::check::check_query(&self.state, uri.query())
        } else if path == "/v1/auth" || path.starts_with("/v1/auth/") {
            self.state
                .gateway
                .decide_http(headers, uri.query())
                .into_response()
        } else {
            return None;
        };
        // The trace layer's classifier (see `stale::TraceClassifier`).
        if response.status().is_server_error() && !response.headers().contains_key(STALE_HEADER) {
            tracing::error!(%method, path, status = response.status().as_u16(), "response failed");
        }
        Some(response)
    }
}
