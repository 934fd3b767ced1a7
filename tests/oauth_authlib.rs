//! RFC 7009 with a real OAuth client library: Authlib's `revoke_token` (driven by
//! `tests/python/authlib_revoke.py`) revokes tokens at `POST /oauth2/revoke`,
//! then veto's `/v1/auth` and nginx's `auth_request` in front of an upstream
//! refuse them; and the same revocation over HTTPS, Authlib verifying the
//! node's certificate against its private CA.
//!
//! Skipped with a message when Python's Authlib (or nginx, for the gateway half)
//! is not installed, unless `VETO_REQUIRE_GATEWAYS=1` (then it fails): see
//! `scripts/install-test-deps.sh`.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{
    gateway_client, get_with_bearer, jwt, make_certs, nginx_bin, now, python, python_runs,
    require_gateway, Nginx, Upstream, Veto, ADMIN_TOKEN,
};

const ISS: &str = "https://idp.example";

/// Runs the Authlib client against `endpoint` (trusting `ca`, if given) with
/// these revocation requests and returns its answers, in order.
fn authlib_revoke(endpoint: &str, ca: Option<&Path>, requests: &Value) -> Vec<Value> {
    let out = run_authlib(endpoint, ca, requests);
    assert!(
        out.status.success(),
        "authlib_revoke.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `tests/python/authlib_revoke.py`, whatever its outcome.
fn run_authlib(endpoint: &str, ca: Option<&Path>, requests: &Value) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/authlib_revoke.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([endpoint, "gateway-client"])
        .args(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(requests.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn tokens_revoked_through_authlib_are_refused_by_veto_and_nginx() {
    let authlib = python_runs("import authlib.integrations.requests_client, requests");
    if require_gateway("Python's Authlib", authlib.then_some(())).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(&dir.path().join("veto"), &[]);
    let t = now();
    let access = jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": ISS, "sub": "dave", "jti": "access-1", "iat": t - 60, "exp": t + 3600}),
    );
    let refresh = "opaque-refresh-7f3a9c+/=";
    let no_iss = jwt(
        json!({"alg": "HS256"}),
        json!({"sub": "dave", "jti": "j-9"}),
    );
    let kept = jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": ISS, "sub": "dave", "jti": "access-2", "iat": t - 60}),
    );

    let answers = authlib_revoke(
        &format!("{}/oauth2/revoke", veto.url),
        None,
        &json!([
            {"token": access, "token_type_hint": "access_token", "client_secret": ADMIN_TOKEN},
            {"token": refresh, "token_type_hint": "refresh_token", "client_secret": ADMIN_TOKEN},
            {"token": no_iss, "client_secret": ADMIN_TOKEN},
            // A client without the admin token revokes nothing.
            {"token": kept, "token_type_hint": "access_token", "client_secret": "not-the-admin-token"},
            {"token": kept, "token_type_hint": "id_token", "client_secret": ADMIN_TOKEN},
        ]),
    );
    for (i, a) in answers[..3].iter().enumerate() {
        assert_eq!(a["status"], 200, "revocation {i}: {a}");
        assert_eq!(a["body"], "", "RFC 7009: an empty 200, nothing leaks: {a}");
        assert_eq!(a["cache_control"], "no-store", "{a}");
    }
    assert_eq!(answers[3]["status"], 401, "{}", answers[3]);
    assert_eq!(answers[4]["status"], 400, "{}", answers[4]);
    let error: Value = serde_json::from_str(answers[4]["body"].as_str().unwrap()).unwrap();
    assert_eq!(error["error"], "unsupported_token_type");

    // A JWT with iss and jti is revoked by them, so the same token re-encoded
    // (another signature, other claims) is refused too.
    assert!(veto.revoked(&[("iss", ISS), ("jti", "access-1")]));
    let client = gateway_client();
    let auth = format!("{}/v1/auth", veto.url);
    for tok in [access.as_str(), refresh, no_iss.as_str()] {
        let r = get_with_bearer(&client, &auth, Some(tok));
        assert_eq!(r.status(), 401, "/v1/auth for a revoked {tok}");
    }
    assert_eq!(get_with_bearer(&client, &auth, Some(&kept)).status(), 200);

    let Some(bin) = require_gateway("nginx", nginx_bin()) else {
        return;
    };
    let upstream = Upstream::start();
    let veto_port = veto.url.rsplit(':').next().unwrap().parse().unwrap();
    let nginx = Nginx::start(&bin, &dir.path().join("nginx"), veto_port, upstream.port);
    for tok in [access.as_str(), refresh, no_iss.as_str()] {
        let r = get_with_bearer(&client, &nginx.url("/api/me"), Some(tok));
        assert_eq!(r.status(), 401, "nginx for a revoked {tok}");
    }
    assert_eq!(upstream.hits(), 0);
    let r = get_with_bearer(&client, &nginx.url("/api/me"), Some(&kept));
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.hits(), 1);
}

/// RFC 7009 over HTTPS: Authlib verifies the node's certificate against its
/// private CA (`verify=`) and revokes; an unverified node gets nothing.
#[test]
fn authlib_revokes_over_https_with_the_private_ca() {
    let authlib = python_runs("import authlib.integrations.requests_client, requests");
    if require_gateway("Python's Authlib", authlib.then_some(())).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs, &["localhost"]);
    let file = |f: &str| certs.join(f).display().to_string();
    let args = [
        "--api-tls-cert".into(),
        file("localhost.pem"),
        "--api-tls-key".into(),
        file("localhost.key"),
    ];
    let mut veto = Veto::launch_with(&dir.path().join("veto"), &args);
    veto.url = format!("https://localhost:{}", veto.port());
    let pem = std::fs::read(certs.join("ca.pem")).unwrap();
    veto.http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    veto.wait_ready(Duration::from_secs(30));

    let t = now();
    let access = jwt(
        json!({"alg": "RS256", "kid": "k1"}),
        json!({"iss": ISS, "sub": "erin", "jti": "tls-1", "iat": t - 60, "exp": t + 3600}),
    );
    let endpoint = format!("{}/oauth2/revoke", veto.url);
    let answers = authlib_revoke(
        &endpoint,
        Some(&certs.join("ca.pem")),
        &json!([
            {"token": access, "token_type_hint": "access_token", "client_secret": ADMIN_TOKEN},
        ]),
    );
    assert_eq!(answers[0]["status"], 200, "{}", answers[0]);
    assert_eq!(answers[0]["body"], "", "{}", answers[0]);
    assert!(veto.revoked(&[("iss", ISS), ("jti", "tls-1")]));

    // Without the CA, Authlib (requests) refuses the node's certificate.
    let request = json!([{"token": "opaque-2", "client_secret": ADMIN_TOKEN}]);
    let out = run_authlib(&endpoint, None, &request);
    assert!(!out.status.success(), "an unverified node was trusted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CERTIFICATE_VERIFY_FAILED"), "{err}");
    assert_eq!(veto.status()["revocations"], 1);
}
