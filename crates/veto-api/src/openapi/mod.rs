//! `GET /openapi.json`: an OpenAPI 3.1 document of the whole HTTP API.
//!
//! The schemas of request and response bodies are derived from the types the
//! handlers parse and answer with (`utoipa::ToSchema` on them), so a field added
//! to a body shows up here without anyone remembering to. The operations are
//! described in the private `paths` module, one documentation item per route;
//! a test compares them with the routes the router really has, in both
//! directions, so a route cannot be added or removed without the document
//! following.

mod paths;

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

/// The path the document is served at.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The security schemes the operations name: an API token (the admin token
/// or a named one with the endpoint's role) as a bearer token, or as the
/// password of HTTP Basic.
struct AdminAuth;

impl Modify for AdminAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "adminBasic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// Tidies what the path attributes produce: an operation documented for
/// several methods gets one operation id per method (ids must be unique), and
/// parameters lose the `null` that `Option` adds to their type (a query or
/// header value is text, never JSON `null`).
struct Tidy;

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("options", item.options.as_mut()),
        ("head", item.head.as_mut()),
        ("patch", item.patch.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

impl Modify for Tidy {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let mut ops = operations(item);
            let shared = ops.len() > 1
                && ops
                    .windows(2)
                    .all(|w| w[0].1.operation_id == w[1].1.operation_id);
            for (method, op) in &mut ops {
                if shared {
                    if let Some(id) = &mut op.operation_id {
                        *id = format!("{id}_{method}");
                    }
                }
                for param in op.parameters.iter_mut().flatten() {
                    let RefOr::T(param) = param else { continue };
                    if let Some(RefOr::T(Schema::Object(obj))) = &mut param.schema {
                        if let SchemaType::Array(types) = &obj.schema_type {
                            let kept: Vec<Type> = types
                                .iter()
                                .filter(|t| **t != Type::Null)
                                .cloned()
                                .collect();
                            if kept.len() == 1 {
                                obj.schema_type = SchemaType::Type(kept[0].clone());
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "veto",
        description = "The HTTP API of a veto node: token-revocation lookups for gateways, \
                       revocation, the audit trail, Shared Signals ingestion, membership, \
                       status and the watch stream. Times are Unix seconds. Errors are \
                       `{\"error\": \"<code>\", \"message\": \"...\"}` except on \
                       `/v1/events`, which answers RFC 8935's `{\"err\", \"description\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        paths::revoke_one,
        paths::audit_list,
        paths::revoke_batch,
        paths::receipt,
        paths::check_get,
        paths::check_batch,
        paths::auth,
        paths::auth_slash,
        paths::auth_rest,
        paths::oauth_revoke,
        paths::events,
        paths::peers_list,
        paths::peers_add,
        paths::peers_remove,
        paths::status,
        paths::metrics,
        paths::healthz,
        paths::readyz,
        paths::watch,
        paths::snapshot,
        paths::filter,
        paths::openapi,
        paths::ui,
        paths::ui_slash,
        paths::ui_asset,
    ),
    components(schemas(paths::ScopeName)),
    modifiers(&AdminAuth, &Tidy),
    tags(
        (name = "lookups", description = "Answered from memory: is this token revoked?"),
        (name = "revocations", description = "Revoking, and the audit trail."),
        (name = "shared-signals", description = "Security Event Tokens pushed by transmitters (RFC 8935)."),
        (name = "stream", description = "Every record as it becomes durable, and a snapshot to start from."),
        (name = "membership", description = "The peers this node replicates with."),
        (name = "operations", description = "Status, metrics, health and this document."),
    ),
)]
struct ApiDoc;

/// The OpenAPI document of the API.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as JSON, rendered once.
fn rendered() -> Bytes {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    JSON.get_or_init(|| {
        // Serialising a tree of strings and maps cannot fail; an empty object
        // would still be valid JSON if it ever did.
        Bytes::from(serde_json::to_vec(&document()).unwrap_or_else(|_| b"{}".to_vec()))
    })
    .clone()
}

/// `GET /openapi.json`.
pub(crate) async fn serve() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        rendered(),
    )
        .into_response()
}
