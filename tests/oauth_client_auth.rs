//! Client authentication at `POST /oauth2/revoke` (RFC 7009 §2.1, RFC 6749
//! §2.3.1), against a real `veto serve` whose admin token (the client secret)
//! holds the characters that form-url-encoding changes: HTTP Basic with
//! encoded credentials, Basic with a raw password, `client_secret_post`, a
//! Bearer token, and the requests that must be refused.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;
use support::{free_port, free_udp_port, veto_bin, Veto};

/// A client secret with a colon, a plus, a percent, spaces, `&` and `=`.
const SECRET: &str = "s3cr:et+with%25 spaces&and=more-0123456789";

/// Starts a node whose admin token is [`SECRET`].
fn start(data_dir: &Path) -> Veto {
    let port = free_port();
    let args: Vec<String> = [
        "serve".to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--gossip-listen".to_owned(),
        format!("127.0.0.1:{}", free_udp_port()),
    ]
    .into();
    let child = Command::new(veto_bin())
        .args(&args)
        .env("VETO_ADMIN_TOKEN", SECRET)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn veto");
    let mut veto = Veto {
        child,
        url: format!("http://127.0.0.1:{port}"),
        data_dir: data_dir.to_path_buf(),
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        args,
        env: Vec::new(),
    };
    veto.wait_ready(Duration::from_secs(30));
    veto
}

/// `application/x-www-form-urlencoded` encoding (RFC 6749 appendix B): space
/// as `+`, every other byte outside `[A-Za-z0-9*-._]` as `%XX`.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn post(veto: &Veto, auth: Option<&str>, body: String) -> RequestBuilder {
    let r = veto
        .http
        .post(format!("{}/oauth2/revoke", veto.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    match auth {
        Some(a) => r.header("authorization", a),
        None => r,
    }
}

fn send(veto: &Veto, auth: Option<&str>, body: String) -> Response {
    post(veto, auth, body).send().unwrap()
}

/// Asserts an empty 200.
fn assert_revoked_ok(r: Response, what: &str) {
    let status = r.status();
    let text = r.text().unwrap();
    assert_eq!(status, 200, "{what}: {text}");
    assert_eq!(text, "", "{what}");
}

/// Asserts an OAuth error answer and returns its `WWW-Authenticate` header.
fn assert_error(r: Response, status: u16, error: &str, what: &str) -> Option<String> {
    assert_eq!(r.status(), status, "{what}");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        r.headers().get("cache-control").unwrap(),
        "no-store",
        "{what}"
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], error, "{what}: {body}");
    assert!(
        !body["error_description"].as_str().unwrap().contains(SECRET),
        "{what}: the answer must not echo the secret: {body}"
    );
    challenge
}

#[test]
fn clients_authenticate_with_basic_post_or_bearer_and_one_method_only() {
    let dir = tempfile::tempdir().unwrap();
    let veto = start(&dir.path().join("veto"));
    let revoked = |tok: &str| veto.revoked(&[("token", tok)]);

    // client_secret_basic: the id and the secret are form-url-encoded, then
    // joined with a colon, so the colons inside them are %3A.
    let id = "client:one two+three%";
    let auth = basic(&form_encode(id), &form_encode(SECRET));
    assert!(auth.len() > 10);
    let r = send(&veto, Some(&auth), form(&[("token", "tok-basic")]));
    assert_revoked_ok(r, "Basic with form-encoded credentials");
    assert!(revoked("tok-basic"));

    // The same client may name itself in the form too, if it is the same id.
    let body = form(&[("token", "tok-basic-id"), ("client_id", id)]);
    assert_revoked_ok(
        send(&veto, Some(&auth), body),
        "Basic and the same client_id",
    );
    assert!(revoked("tok-basic-id"));
    let body = form(&[("token", "tok-other-id"), ("client_id", "someone-else")]);
    let r = send(&veto, Some(&auth), body);
    assert_error(r, 400, "invalid_request", "Basic and another client_id");
    assert!(!revoked("tok-other-id"));

    // A password sent as it is (curl -u) still works.
    let r = send(
        &veto,
        Some(&basic("plain", SECRET)),
        form(&[("token", "tok-raw")]),
    );
    assert_revoked_ok(r, "Basic with a raw password");
    assert!(revoked("tok-raw"));

    // client_secret_post.
    let body = form(&[
        ("token", "tok-post"),
        ("token_type_hint", "refresh_token"),
        ("client_id", id),
        ("client_secret", SECRET),
    ]);
    assert_revoked_ok(send(&veto, None, body), "client_secret_post");
    assert!(revoked("tok-post"));

    // The admin token as a Bearer token, as on every admin endpoint.
    let bearer = format!("Bearer {SECRET}");
    let r = send(&veto, Some(&bearer), form(&[("token", "tok-bearer")]));
    assert_revoked_ok(r, "Bearer");
    assert!(revoked("tok-bearer"));

    // Two methods at once: 400 invalid_request (RFC 6749 §2.3, §5.2), even
    // when both are right.
    let both = form(&[
        ("token", "tok-both"),
        ("client_id", id),
        ("client_secret", SECRET),
    ]);
    for (what, a) in [("Basic and post", &auth), ("Bearer and post", &bearer)] {
        let r = send(&veto, Some(a), both.clone());
        let challenge = assert_error(r, 400, "invalid_request", what);
        assert_eq!(challenge, None, "{what}");
    }
    assert!(!revoked("tok-both"));

    // A repeated credential field is invalid_request too.
    let body = form(&[
        ("token", "tok-twice"),
        ("client_id", id),
        ("client_secret", SECRET),
        ("client_secret", SECRET),
    ]);
    assert_error(
        send(&veto, None, body),
        400,
        "invalid_request",
        "secret twice",
    );
    assert!(!revoked("tok-twice"));

    // Wrong secrets: 401 invalid_client with a challenge of the scheme used.
    let wrong = [
        ("wrong Basic secret", Some(basic("c", "nope")), "Basic"),
        (
            "Basic secret encoded wrongly",
            Some(basic("c", &SECRET.replace('%', "%25"))),
            "Basic",
        ),
        ("wrong Bearer", Some("Bearer nope".to_owned()), "Bearer"),
        (
            "not a scheme we take",
            Some("Digest x=1".to_owned()),
            "Basic",
        ),
        ("not base64", Some("Basic !!!".to_owned()), "Basic"),
    ];
    for (what, a, scheme) in wrong {
        let r = send(&veto, a.as_deref(), form(&[("token", "tok-wrong")]));
        let challenge = assert_error(r, 401, "invalid_client", what);
        let challenge = challenge.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
        assert!(challenge.starts_with("Basic realm="), "{what}: {challenge}");
        assert!(
            challenge.contains(&format!("{scheme} realm=")),
            "{what}: {challenge}"
        );
    }
    let body = form(&[
        ("token", "tok-wrong"),
        ("client_id", id),
        ("client_secret", "nope"),
    ]);
    let challenge = assert_error(send(&veto, None, body), 401, "invalid_client", "post");
    assert_eq!(challenge.as_deref(), Some("Basic realm=\"veto\""));

    // No authentication at all, or a client id without a secret.
    for (what, body) in [
        ("no auth", form(&[("token", "tok-wrong")])),
        (
            "id only",
            form(&[("token", "tok-wrong"), ("client_id", id)]),
        ),
    ] {
        let challenge = assert_error(send(&veto, None, body), 401, "invalid_client", what);
        assert_eq!(challenge.as_deref(), Some("Basic realm=\"veto\""), "{what}");
    }
    assert!(!revoked("tok-wrong"));

    // Only an authenticated client learns what is wrong with its form.
    let r = send(&veto, None, form(&[("token_type_hint", "id_token")]));
    assert_error(r, 401, "invalid_client", "bad form without auth");
    let r = send(&veto, Some(&auth), form(&[("token_type_hint", "id_token")]));
    assert_error(r, 400, "invalid_request", "no token");
}
