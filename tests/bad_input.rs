//! Bad input gets a clear 4xx JSON error and changes nothing; bad start-up
//! conditions end the process with one clear line.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::{jwt, now, veto_bin, Veto, ADMIN_TOKEN};

fn assert_error(resp: reqwest::blocking::Response, status: u16, needle: &str) {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().expect("error body is JSON");
    let code = body["error"].as_str().expect("error code");
    let message = body["message"].as_str().expect("error message");
    assert!(!code.is_empty());
    assert!(
        message.to_lowercase().contains(&needle.to_lowercase()),
        "message {message:?} should mention {needle:?}"
    );
}

#[test]
fn every_bad_request_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let veto = Veto::start(dir.path(), &[]);
    let url = |p: &str| format!("{}{p}", veto.url);
    let post_raw = |body: &'static str| {
        veto.http
            .post(url("/v1/revocations"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    assert_error(post_raw("{\"scope\": "), 400, "");
    assert_error(
        veto.post_json("/v1/revocations", &json!({"scope": "everything"})),
        400,
        "session",
    );
    assert_error(
        veto.post_json("/v1/revocations", &json!({"scope": "session"})),
        400,
        "sid",
    );
    let long = "x".repeat(513);
    assert_error(
        veto.post_json("/v1/revocations", &json!({"scope": "token", "jti": long})),
        400,
        "512",
    );
    assert_error(
        veto.post_json(
            "/v1/revocations",
            &json!({"scope": "subject", "sub": "a", "before": "yesterday"}),
        ),
        400,
        "",
    );
    assert_error(
        veto.post_json(
            "/v1/revocations",
            &json!({"scope": "token", "jti": "a", "expires_at": now() - 10}),
        ),
        400,
        "past",
    );
    let huge = format!(
        "{{\"scope\":\"token\",\"jti\":\"a\",\"reason\":\"{}\"}}",
        "r".repeat(1_100_000)
    );
    let r = veto
        .http
        .post(url("/v1/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let batch: Vec<Value> = (0..10_001)
        .map(|i| json!({"scope": "token", "jti": format!("{i}")}))
        .collect();
    let r = veto.post_json("/v1/revocations/batch", &json!(batch));
    assert!(
        r.status() == 413 || r.status() == 400,
        "oversized batch: {}",
        r.status()
    );
    let bad_item = json!([{"scope": "token", "jti": "fine"}, {"scope": "token"}]);
    assert_error(veto.post_json("/v1/revocations/batch", &bad_item), 400, "1");

    // Auth.
    let r = veto
        .http
        .post(url("/v1/revocations"))
        .json(&json!({"scope": "token", "jti": "a"}))
        .send()
        .unwrap();
    assert_error(r, 401, "");
    let r = veto
        .http
        .post(url("/v1/revocations"))
        .bearer_auth("wrong")
        .json(&json!({"scope": "token", "jti": "a"}))
        .send()
        .unwrap();
    assert_error(r, 401, "");

    // Lookups.
    assert_error(veto.get("/v1/check?token=not.a.jwt"), 400, "");
    assert_error(veto.get("/v1/check?jti=a&iat=soon"), 400, "iat");
    let r = veto
        .http
        .get(url("/v1/auth"))
        .bearer_auth("a.b.c")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let bad_iat = jwt(
        json!({"alg": "none"}),
        json!({"jti": "z", "iat": "yesterday"}),
    );
    assert_error(veto.get(&format!("/v1/check?token={bad_iat}")), 400, "iat");

    // Routing.
    assert_error(veto.http.delete(url("/v1/check")).send().unwrap(), 405, "");
    assert_error(veto.get("/v1/nothing-here"), 404, "");

    // Nothing above was stored.
    assert_eq!(veto.get_json("/v1/status")["revocations"], 0);
    assert!(!veto.revoked(&[("jti", "fine")]));
}

#[test]
fn an_unusable_data_dir_ends_the_process_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let out = Command::new(veto_bin())
        .args(["serve", "--data-dir"])
        .arg(file.join("data"))
        .args(["--listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0"])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data dir"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_data_dir_locked_by_another_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Veto::start(dir.path(), &[]);
    let out = Command::new(veto_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0"])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.to_lowercase().contains("lock"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("veto: ") && last.to_lowercase().contains("lock"),
        "one clear line: {stderr}"
    );
}

#[test]
fn without_a_token_the_node_makes_one_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut child = Command::new(veto_bin())
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gossip-listen",
            "127.0.0.1:0",
        ])
        .env_remove("VETO_ADMIN_TOKEN")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = dir.path().join("admin-token");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert!(token.len() >= 32);
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = client
        .post(format!("{base}/v1/revocations"))
        .bearer_auth(&token)
        .json(&json!({"scope": "key", "kid": "k"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let _ = child.kill();
    let _ = child.wait();
}

/// A request with two `Authorization` headers is refused, whichever comes
/// first: a gateway and its upstream may each act on a different one, so a
/// clean token must not vouch for a revoked one (nor a wrong admin token be
/// excused by a right one).
#[test]
fn several_authorization_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Veto::start(dir.path(), &[]);
    node.revoke(json!({"scope": "token", "iss": "https://idp", "jti": "stolen"}));
    let clean = format!(
        "Bearer {}",
        jwt(json!({}), json!({"iss": "https://idp", "jti": "fine"}))
    );
    let revoked = format!(
        "Bearer {}",
        jwt(json!({}), json!({"iss": "https://idp", "jti": "stolen"}))
    );
    let http = reqwest::blocking::Client::new();
    let one = http
        .get(format!("{}/v1/auth", node.url))
        .header("authorization", &clean)
        .send()
        .unwrap();
    assert_eq!(one.status(), 200);
    for (first, second) in [(&clean, &revoked), (&revoked, &clean), (&clean, &clean)] {
        let r = http
            .get(format!("{}/v1/auth", node.url))
            .header("authorization", first)
            .header("authorization", second)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_error(r, 401, "more than one Authorization header");
    }
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = http
        .get(format!("{}/v1/revocations", node.url))
        .header("authorization", &admin)
        .header("authorization", "Bearer wrong")
        .send()
        .unwrap();
    assert_error(r, 401, "more than one Authorization header");
}

/// A fresh data dir is 0700 and everything the node writes in it is private
/// to its user, whatever the umask; an admin token file others can read, or
/// a token short enough to guess, is reported at start.
#[test]
fn the_data_dir_is_private_and_weak_secrets_are_reported() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let token_file = root.path().join("token");
    std::fs::write(&token_file, "short-token\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = support::free_port();
    let mut child = Command::new(veto_bin())
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--gossip-listen",
            "127.0.0.1:0",
            "--checkpoint-interval",
            "1",
        ])
        .arg("--admin-token-file")
        .arg(&token_file)
        .env_remove("VETO_ADMIN_TOKEN")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::blocking::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(std::time::Instant::now() < deadline, "node not ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let r = client
        .post(format!("http://127.0.0.1:{port}/v1/revocations"))
        .bearer_auth("short-token")
        .json(&json!({"scope": "key", "kid": "k"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // The index checkpoint, written in the background, is one of its files.
    let checkpoint = data.join("index.checkpoint");
    while !checkpoint.exists() {
        assert!(std::time::Instant::now() < deadline, "no index checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("readable by other users"), "{log}");
    assert!(log.contains("short enough to guess"), "{log}");

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(
                mode(&path) & 0o077,
                0,
                "{} is open to others",
                path.display()
            );
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
            }
        }
    }
    assert!(files >= 2, "the node wrote its database");
}

/// A declared body over the limit gets 413 at once, before any of it is sent:
/// the node neither waits for ten gigabytes nor reads the first megabyte.
#[test]
fn an_oversized_content_length_is_refused_before_the_body() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let node = Veto::start(dir.path(), &[]);
    let addr = node.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "POST /v1/revocations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .expect("an answer before the body was sent");
    assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head));
    assert_eq!(node.status()["revocations"], 0);
}
