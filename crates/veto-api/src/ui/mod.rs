//! `/ui`: the operator dashboard, plain HTML, CSS and JavaScript compiled into
//! the binary, so that it works offline and with no CDN.
//!
//! `GET /ui` and `GET /ui/` answer the page, `GET /ui/{asset}` its files. No
//! token is needed for them: the page holds no data. It reads the open
//! endpoints (`/v1/status`, `/metrics`, `/openapi.json`) itself, and the
//! protected ones (the audit trail, revoking, receipts) with the bearer token
//! the operator types in, which it keeps in the tab's `sessionStorage` only.
//!
//! Every answer carries a strict Content-Security-Policy ([`CSP`]: nothing but
//! this origin, no inline script or style, no framing), `nosniff` and
//! `no-referrer`. The asset names carry no version, so they are served with
//! `Cache-Control: no-cache` and a strong `ETag`: a browser revalidates on
//! each load (a `304` when nothing changed) and never runs an old script
//! against a new node.

use std::sync::OnceLock;

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;

/// The Content-Security-Policy of the dashboard: scripts, styles, images and
/// requests from this origin only; no plugins, no `<base>`, no framing.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// How long a browser may keep an asset without asking again: not at all
/// (it revalidates with the ETag).
const CACHE_CONTROL: &str = "no-cache";

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The JavaScript media type (RFC 9239).
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard, the page first.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_bytes!("assets/api.js"),
    },
    Asset {
        name: "cluster.js",
        content_type: JS,
        body: include_bytes!("assets/cluster.js"),
    },
    Asset {
        name: "latency.js",
        content_type: JS,
        body: include_bytes!("assets/latency.js"),
    },
    Asset {
        name: "audit.js",
        content_type: JS,
        body: include_bytes!("assets/audit.js"),
    },
];

/// The ETag of each asset, in the order of [`ASSETS`]: a quoted prefix of
/// its SHA-256.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12])))
            .collect()
    })
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The answer for asset `i`: the file, or `304` when the browser has it.
fn serve(i: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let common = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // A hex digest in quotes is always a valid header value.
        (
            header::ETAG,
            HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\"")),
        ),
    ];
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

/// `GET /ui` and `GET /ui/`: the page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `GET /ui/{asset}`: one file of the dashboard, or 404 `not_found`.
pub(crate) async fn asset(
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(name) = path?;
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => Ok(serve(i, &headers)),
        None => Err(ApiError::not_found(format!(
            "the dashboard has no file {name:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_the_policy() {
        for a in ASSETS {
            let r = asset(Ok(Path(a.name.to_owned())), HeaderMap::new())
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{}", a.name);
            assert_eq!(header(&r, header::CONTENT_TYPE), a.content_type);
            assert_eq!(header(&r, header::CONTENT_SECURITY_POLICY), CSP);
            assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
            assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert!(header(&r, header::ETAG).starts_with('"'));
        }
        let page = index(HeaderMap::new()).await;
        assert_eq!(
            header(&page, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn an_unknown_asset_is_404_and_a_known_etag_is_304() {
        let err = asset(Ok(Path("../lib.rs".to_owned())), HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::NOT_FOUND);

        let first = index(HeaderMap::new()).await;
        let mut again = HeaderMap::new();
        again.insert(
            header::IF_NONE_MATCH,
            first.headers().get(header::ETAG).unwrap().clone(),
        );
        let second = index(again).await;
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&second, header::CONTENT_SECURITY_POLICY), CSP);
    }

    #[test]
    fn the_page_names_only_assets_that_exist_and_nothing_inline() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        for (at, _) in page.match_indices("/ui/") {
            let rest = &page[at + 4..];
            let name = &rest[..rest.find('"').unwrap()];
            assert!(ASSETS.iter().any(|a| a.name == name), "{name}");
        }
        assert!(
            !page.contains("style="),
            "inline style is refused by the CSP"
        );
        assert!(
            !page.contains("<script>"),
            "inline script is refused by the CSP"
        );
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
        // Modules import each other by absolute path; each must exist.
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let src = std::str::from_utf8(a.body).unwrap();
            for (at, _) in src.match_indices("from \"/ui/") {
                let rest = &src[at + 10..];
                let name = &rest[..rest.find('"').unwrap()];
                assert!(ASSETS.iter().any(|b| b.name == name), "{}: {name}", a.name);
            }
        }
    }
}
