//! The OpenAPI document at `/openapi.json` describes exactly the routes the
//! router has, and is internally consistent.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use veto_core::ScopeKind;

use common::{App, ADMIN};

const ANY: [&str; 8] = [
    "get", "post", "put", "delete", "patch", "head", "options", "trace",
];

async fn document(app: &App) -> Value {
    let a = app.get("/openapi.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    a.json()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ANY.contains(&method.as_str()) {
                out.insert((path.clone(), method.clone()));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The text from just after `open` (an opening parenthesis) to its match.
fn balanced(s: &str) -> &str {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in {s:?}");
}

/// The value of `const NAME: &str = "...";` anywhere in the sources.
fn const_str(sources: &[String], name: &str) -> String {
    let needle = format!("const {name}: &str = \"");
    for src in sources {
        if let Some(at) = src.find(&needle) {
            let rest = &src[at + needle.len()..];
            return rest[..rest.find('"').unwrap()].to_owned();
        }
    }
    panic!("no string constant {name}");
}

/// Every (path, method) the router serves, read from the `.route(...)` calls
/// in the crate's sources, with axum's `{*rest}` written as OpenAPI's
/// `{rest}`.
fn routed() -> BTreeSet<(String, String)> {
    let mut sources = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut sources,
    );
    let mut out = BTreeSet::new();
    for src in &sources {
        for (at, _) in src.match_indices(".route(") {
            let call = balanced(&src[at + ".route(".len()..]);
            let (first, rest) = call.split_once(',').unwrap();
            let first = first.trim();
            let path = match first.strip_prefix('"') {
                Some(lit) => lit.trim_end_matches('"').to_owned(),
                None => const_str(&sources, first.rsplit("::").next().unwrap()),
            };
            let path = path.replace("{*", "{");
            let mut methods = BTreeSet::new();
            for m in ANY.iter().chain(&["any"]) {
                let called = rest.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !rest.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && rest.as_bytes()[i - 1] != b'_'
                });
                if called {
                    methods.insert(*m);
                }
            }
            assert!(!methods.is_empty(), "no method in .route({call})");
            for m in methods {
                let all: &[&str] = if m == "any" { &ANY } else { &[m] };
                for m in all {
                    out.insert((path.clone(), (*m).to_owned()));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_exists() {
    let app = App::new();
    let doc = document(&app).await;
    let documented = documented(&doc);
    let routed = routed();
    // The routes the sources must at least have, so that a parser gone blind
    // cannot pass this test with two empty sets.
    for must in [
        "/v1/events",
        "/v1/watch",
        "/v1/snapshot",
        "/openapi.json",
        "/v1/check",
    ] {
        assert!(
            routed.iter().any(|(p, _)| p == must),
            "{must} not found in the sources"
        );
    }
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not in /openapi.json: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "in /openapi.json but not routed: {unrouted:?}"
    );

    // And the router itself agrees: no documented operation is answered as an
    // unknown path or a wrong method.
    for (path, method) in &documented {
        let uri = path
            .replace("{rest}", "x/y")
            .replace("{name_or_addr}", "nobody");
        let req = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .body(Body::empty())
            .unwrap();
        let resp = app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        if status == StatusCode::NOT_FOUND {
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains("no such endpoint"), "{method} {uri}: {text}");
        }
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_resolvable_refs_and_unique_ids() {
    let app = App::new();
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (at, _) in text.match_indices("\"$ref\":\"#/components/schemas/") {
        let rest = &text[at + "\"$ref\":\"#/components/schemas/".len()..];
        let name = &rest[..rest.find('"').unwrap()];
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["admin"]["scheme"], "bearer");

    let mut ids = BTreeSet::new();
    for (path, method) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        let id = op["operationId"].as_str().unwrap().to_owned();
        assert!(ids.insert(id.clone()), "operationId {id} is used twice");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        // Operations that need a token say so, and only they do.
        let needs_token = op["security"].as_array().is_some();
        let write = matches!(method.as_str(), "post" | "delete")
            && !path.starts_with("/v1/check")
            && !path.starts_with("/v1/auth")
            && path != "/v1/events";
        let role_read = method == "get"
            && (path.starts_with("/v1/revocations")
                || matches!(
                    path.as_str(),
                    "/v1/peers" | "/v1/watch" | "/v1/snapshot" | "/v1/filter"
                ));
        assert_eq!(needs_token, write || role_read, "{method} {path}");
        if needs_token {
            let statuses = op["responses"].as_object().unwrap();
            assert!(
                statuses.contains_key("401") && statuses.contains_key("403"),
                "{method} {path} documents 401 and 403"
            );
        }
    }
}

#[tokio::test]
async fn documented_shapes_follow_the_types() {
    let app = App::new();
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let names: Vec<&str> = ScopeKind::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(schemas["ScopeName"]["enum"], serde_json::json!(names));
    // Request bodies that refuse unknown fields say so.
    for name in ["RevokeRequest", "CheckRequest", "AddPeer"] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    assert_eq!(
        schemas["SetErrorBody"]["required"],
        serde_json::json!(["err", "description"])
    );
    let events = &doc["paths"]["/v1/events"]["post"];
    assert!(events["requestBody"]["content"]["application/secevent+jwt"].is_object());
    assert!(events["responses"]["202"].is_object());

    // A real answer fits its documented shape: every field of a stored record
    // is a documented property.
    app.revoke(serde_json::json!({"scope": "subject", "iss": "i", "sub": "alice"}))
        .await;
    let record = &app.admin_get("/v1/revocations").await.json()["records"][0];
    let props = schemas["Record"]["properties"].as_object().unwrap();
    for field in record.as_object().unwrap().keys() {
        assert!(props.contains_key(field), "`{field}` is not documented");
    }
    for required in schemas["Record"]["required"].as_array().unwrap() {
        assert!(
            record.get(required.as_str().unwrap()).is_some(),
            "{required}"
        );
    }
}
