//! HTTPS on the HTTP API: a real node serving `--api-tls-cert` and
//! `--api-tls-key` made by `veto cert`, the clients (reqwest, veto-client,
//! the CLI, curl for h2) trusting its private CA, `--api-tls-client-ca`
//! refusing writes without a client certificate, and the flags' misuse
//! refused at start.

mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{json, Value};
use support::{find_executable, free_port, make_certs, veto_bin, Veto, ADMIN_TOKEN};

const ISS: &str = "https://idp.example";

/// A CA in `dir` and, signed by it, a certificate for each name.
fn certs(dir: &Path, names: &[&str]) -> PathBuf {
    make_certs(dir, names);
    dir.to_path_buf()
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

/// A client trusting `ca` only (no system roots), with this client
/// certificate if given.
fn client(ca: &Path, identity: Option<(&Path, &str)>) -> Client {
    let pem = std::fs::read(ca.join("ca.pem")).unwrap();
    let mut builder = Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(30));
    if let Some((dir, name)) = identity {
        let mut pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// A node serving HTTPS with the `localhost` certificate of `ca`, reached
/// at `https://localhost:PORT` by a client trusting `ca`.
fn start_https(data: &Path, ca: &Path, extra: &[&str]) -> Veto {
    let mut args = vec![
        "--api-tls-cert".to_owned(),
        path(ca, "localhost.pem"),
        "--api-tls-key".to_owned(),
        path(ca, "localhost.key"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut veto = Veto::launch_with(data, &args);
    veto.url = format!("https://localhost:{}", veto.port());
    veto.http = client(ca, None);
    veto.wait_ready(Duration::from_secs(30));
    veto
}

/// Runs `veto ARGS` with the admin token and these variables.
fn cli(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(veto_bin())
        .args(args)
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env_remove("VETO_CA")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn revoke_body(jti: &str) -> Value {
    json!({"scope": "token", "iss": ISS, "jti": jti})
}

#[test]
fn lookups_and_revokes_work_over_https_and_plain_http_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs(&dir.path().join("ca"), &["localhost"]);
    let veto = start_https(&dir.path().join("data"), &ca, &[]);

    veto.revoke(revoke_body("over-https"));
    assert!(veto.revoked(&[("iss", ISS), ("jti", "over-https")]));
    assert!(!veto.revoked(&[("iss", ISS), ("jti", "another")]));

    // Plain HTTP to the HTTPS port gets no answer at all.
    let plain = Client::builder().no_proxy().build().unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{}/healthz", veto.port()))
        .send();
    assert!(r.is_err(), "plain HTTP was answered: {r:?}");
    // A client that does not trust the CA refuses the node.
    let untrusting = Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{}/healthz", veto.url))
        .send()
        .is_err());

    // veto-client, with the CA.
    let pem = std::fs::read(ca.join("ca.pem")).unwrap();
    let node = veto_client::Client::with_ca_pem(&veto.url, &pem).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(node.status()).unwrap();
    assert_eq!(status.revocations, 1);
    assert!(matches!(
        veto_client::Client::with_ca_pem(&veto.url, b"not PEM"),
        Err(veto_client::ClientError::Tls(_))
    ));

    // The CLI, with VETO_CA; without it the node is not trusted.
    let ca_env = [("VETO_CA", path(&ca, "ca.pem"))];
    let out = cli(
        &[
            "revoke", "--node", &veto.url, "--scope", "token", "--iss", ISS, "--jti", "by-cli",
        ],
        &ca_env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(
        &[
            "check", "--node", &veto.url, "--iss", ISS, "--jti", "by-cli",
        ],
        &ca_env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["revoked"], true, "{answer}");
    let out = cli(&["status", "--node", &veto.url], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach the node"),
        "{}",
        stderr(&out)
    );

    // h2 by ALPN, asked for by curl.
    if let Some(curl) = support::require_gateway("curl", find_executable("curl")) {
        let out = Command::new(curl)
            .args(["-sS", "--http2", "--cacert", &path(&ca, "ca.pem")])
            .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
            .arg(format!("{}/v1/check?iss={ISS}&jti=by-cli", veto.url))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");
    }
}

/// A client certificate is asked for but optional: lookups pass without
/// one, writes need one from the CA, and one from another CA is refused.
#[test]
fn client_ca_guards_the_writes_and_not_the_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs(&dir.path().join("ca"), &["localhost", "writer"]);
    let other = certs(&dir.path().join("other"), &["intruder"]);
    let veto = start_https(
        &dir.path().join("data"),
        &ca,
        &["--api-tls-client-ca", &path(&ca, "ca.pem")],
    );
    let anonymous = client(&ca, None);
    let writer = client(&ca, Some((&ca, "writer")));
    let url = |p: &str| format!("{}{p}", veto.url);

    let refused = |r: reqwest::blocking::Response, what: &str| {
        assert_eq!(r.status(), 403, "{what}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"], "client_certificate_required", "{what}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("client certificate"),
            "{body}"
        );
    };
    let r = anonymous
        .post(url("/v1/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&revoke_body("no-cert"))
        .send()
        .unwrap();
    refused(r, "a revocation without a certificate");
    let r = anonymous
        .post(url("/v1/revocations/batch"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!([revoke_body("no-cert")]))
        .send()
        .unwrap();
    refused(r, "a batch without a certificate");
    let r = anonymous
        .post(url("/oauth2/revoke"))
        .basic_auth("gateway", Some(ADMIN_TOKEN))
        .form(&[("token", "opaque")])
        .send()
        .unwrap();
    refused(r, "RFC 7009 without a certificate");
    let r = anonymous
        .delete(url("/v1/peers/somewhere"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .unwrap();
    refused(r, "a peer removal without a certificate");

    let r = writer
        .post(url("/v1/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&revoke_body("with-cert"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());

    // Lookups need no certificate: GET, the POST batch and /v1/auth.
    let r = anonymous
        .get(url("/v1/check"))
        .query(&[("iss", ISS), ("jti", "with-cert")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(veto.revoked(&[("iss", ISS), ("jti", "with-cert")]));
    assert!(!veto.revoked(&[("iss", ISS), ("jti", "no-cert")]));
    let r = anonymous
        .post(url("/v1/check"))
        .json(&json!([{"iss": ISS, "jti": "with-cert"}]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let r = anonymous
        .get(url("/v1/auth"))
        .bearer_auth(support::jwt(
            json!({"alg": "RS256"}),
            json!({"iss": ISS, "jti": "with-cert"}),
        ))
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a revoked token, judged without a certificate"
    );

    // A certificate from another CA fails the handshake.
    let intruder = client(&ca, Some((&other, "intruder")));
    let r = intruder
        .post(url("/v1/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&revoke_body("intruder"))
        .send();
    assert!(r.is_err(), "a foreign client certificate was let in: {r:?}");

    // The CLI: its writes need VETO_CLIENT_CERT and VETO_CLIENT_KEY.
    let args = [
        "revoke", "--node", &veto.url, "--scope", "token", "--iss", ISS, "--jti", "cli",
    ];
    let mut env = vec![("VETO_CA", path(&ca, "ca.pem"))];
    let out = cli(&args, &env);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("403 Forbidden: POST /v1/revocations needs a client certificate"),
        "{}",
        stderr(&out)
    );
    env.push(("VETO_CLIENT_CERT", path(&ca, "writer.pem")));
    let out = cli(&args, &env);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("go together"), "{}", stderr(&out));
    env.push(("VETO_CLIENT_KEY", path(&ca, "writer.key")));
    let out = cli(&args, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(veto.revoked(&[("iss", ISS), ("jti", "cli")]));
}

/// SIGHUP reads the certificate and key again (no `--config` needed); a
/// pair that does not load is refused and the one in use stays.
#[test]
fn sighup_reloads_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = certs(&dir.path().join("first"), &["localhost"]);
    let second = certs(&dir.path().join("second"), &["localhost"]);
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    for f in ["ca.pem", "localhost.pem", "localhost.key"] {
        std::fs::copy(first.join(f), served.join(f)).unwrap();
    }
    let veto = start_https(&dir.path().join("data"), &served, &[]);
    let hangup = || {
        let pid = veto.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    };
    let healthy = |ca: &Path| {
        client(ca, None)
            .get(format!("{}/healthz", veto.url))
            .send()
            .is_ok_and(|r| r.status() == 200)
    };
    assert!(healthy(&first) && !healthy(&second));

    for f in ["localhost.pem", "localhost.key"] {
        std::fs::copy(second.join(f), served.join(f)).unwrap();
    }
    hangup();
    support::eventually(Duration::from_secs(10), "the new certificate", || {
        healthy(&second)
    });
    assert!(!healthy(&first));

    std::fs::write(served.join("localhost.pem"), "not a certificate").unwrap();
    hangup();
    std::thread::sleep(Duration::from_millis(500));
    assert!(healthy(&second), "a broken file replaced the certificate");
}

/// The handshake has the header timeout, and the connection cap holds
/// TLS connections too (one beyond it is closed at once, not at the
/// timeout).
#[test]
fn the_handshake_is_timed_and_the_cap_holds() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs(&dir.path().join("ca"), &["localhost"]);
    let veto = start_https(
        &dir.path().join("data"),
        &ca,
        &["--header-timeout", "3", "--max-connections", "2"],
    );
    let addr = ("127.0.0.1", veto.port());
    let closed_within = |stream: &mut TcpStream, limit: Duration| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    };

    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut second = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut beyond = TcpStream::connect(addr).unwrap();
    assert!(closed_within(&mut beyond, Duration::from_millis(1500)));
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert!(closed_within(&mut silent, Duration::from_secs(10)));
    assert!(closed_within(&mut second, Duration::from_secs(10)));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(2900), "{waited:?}");
    // The cap is free again.
    assert!(veto.get("/healthz").status().is_success());
}

/// On h2 one stream can stall under flow control while the socket stays
/// writable: a stream whose client reads nothing closes the connection at
/// the write timeout, as a blocked socket does on HTTP/1.
#[test]
fn an_h2_stream_nobody_reads_is_closed_at_the_write_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs(&dir.path().join("ca"), &["localhost"]);
    let veto = start_https(&dir.path().join("data"), &ca, &["--write-timeout", "2"]);
    for batch in 0..2 {
        let items: Vec<Value> = (0..10_000)
            .map(|i| revoke_body(&format!("bulk-{batch}-{i}")))
            .collect();
        let r = veto.post_json("/v1/revocations/batch", &json!(items));
        assert_eq!(r.status(), 201);
    }
    let pem = std::fs::read(ca.join("ca.pem")).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", veto.port()))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        // A stream window of 1 KiB that is never released: the snapshot's
        // stream stalls after its first KiB.
        let (mut client, connection) = h2::client::Builder::new()
            .initial_window_size(1024)
            .handshake::<_, bytes::Bytes>(tls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let request = axum::http::Request::get("https://localhost/v1/snapshot")
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(())
            .unwrap();
        let (answer, _) = client.send_request(request, true).unwrap();
        let answer = answer.await.unwrap();
        assert_eq!(answer.status(), 200);
        let started = Instant::now();
        let _unread = answer.into_body();
        let ended = tokio::time::timeout(Duration::from_secs(15), connection).await;
        assert!(ended.is_ok(), "the stalled connection stayed open");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    });
    // The node goes on serving.
    assert!(veto.get("/healthz").status().is_success());
}

/// Runs `veto serve ARGS` until it exits (or `limit` passes) and answers its
/// exit status and what it wrote on stderr; stops it at `until` in stderr.
fn serve_briefly(dir: &Path, args: &[&str], until: Option<&str>) -> (Option<bool>, String) {
    let mut child = Command::new(veto_bin())
        .arg("serve")
        .args(["--data-dir", &path(dir, "data")])
        .args(args)
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        text.push_str(&line);
        text.push('\n');
        if until.is_some_and(|u| line.contains(u)) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, text);
        }
    }
    let _ = child.kill();
    (child.wait().ok().map(|s| s.success()), text)
}

#[test]
fn misused_flags_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs(&dir.path().join("ca"), &["localhost", "other"]);
    let listen = format!("127.0.0.1:{}", free_port());
    let cert = path(&ca, "localhost.pem");
    let wrong_key = path(&ca, "other.key");
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["--api-tls-cert", &cert],
            "--api-tls-cert (`api_tls_cert`) needs --api-tls-key",
        ),
        (
            vec!["--api-tls-key", &cert],
            "--api-tls-key (`api_tls_key`) needs --api-tls-cert",
        ),
        (
            vec!["--api-tls-client-ca", &cert],
            "--api-tls-client-ca (`api_tls_client_ca`) needs",
        ),
        (
            vec!["--api-tls-cert", &cert, "--api-tls-key", "/nonexistent.key"],
            "cannot read --api-tls-key /nonexistent.key",
        ),
        (
            vec!["--api-tls-cert", &cert, "--api-tls-key", &wrong_key],
            "does the key belong to the certificate?",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["--listen", &listen];
        args.extend(flags);
        let (ok, text) = serve_briefly(dir.path(), &args, None);
        assert_eq!(ok, Some(false), "{args:?} started: {text}");
        assert!(text.contains(message), "{args:?}: {text}");
    }

    // `veto config check` knows the keys and the rule.
    let file = dir.path().join("veto.toml");
    let check = |text: String| {
        std::fs::write(&file, text).unwrap();
        cli(&["config", "check", &file.display().to_string()], &[])
    };
    let key = path(&ca, "localhost.key");
    let out = check(format!("api_tls_cert = {cert:?}\n"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs --api-tls-key"),
        "{}",
        stderr(&out)
    );
    let ca_pem = path(&ca, "ca.pem");
    let out = check(format!(
        "api_tls_cert = {cert:?}\napi_tls_key = {key:?}\napi_tls_client_ca = {ca_pem:?}\n"
    ));
    assert!(out.status.success(), "{}", stderr(&out));

    // In the clear on a non-loopback address: it starts, with a warning.
    let open = format!("0.0.0.0:{}", free_port());
    let (_, text) = serve_briefly(dir.path(), &["--listen", &open], Some("without TLS"));
    assert!(
        text.contains(&open) && text.contains("--api-tls-cert"),
        "{text}"
    );
}
