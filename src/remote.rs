//! The operator commands that talk to a node's HTTP API (`revoke`, `check`,
//! `peers`, `status`) and the local `cert` command.

use std::time::Duration;

use anyhow::{bail, Context as _};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use veto_core::request::RevokeRequest;

use crate::cli::{CertCommand, CheckArgs, NodeArgs, PeersCommand, RevokeArgs};

fn client() -> anyhow::Result<Client> {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")
}

fn url(node: &str, path: &str) -> String {
    format!("{}{}", node.trim_end_matches('/'), path)
}

fn admin_token(node: &NodeArgs) -> anyhow::Result<Option<String>> {
    if let Some(token) = &node.admin_token {
        return Ok(Some(token.trim().to_owned()));
    }
    match &node.admin_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read admin token file {}", path.display()))?;
            Ok(Some(token.trim().to_owned()))
        }
        None => Ok(None),
    }
}

fn with_admin(req: RequestBuilder, node: &NodeArgs) -> anyhow::Result<RequestBuilder> {
    Ok(match admin_token(node)? {
        Some(token) => req.bearer_auth(token),
        None => req,
    })
}

/// Prints the JSON answer, or turns an error answer into one clear line.
fn finish(node: &str, resp: reqwest::Result<Response>) -> anyhow::Result<()> {
    let resp = resp.with_context(|| format!("cannot reach the node at {node}"))?;
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    if !status.is_success() {
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(body);
        bail!("{status}: {detail}");
    }
    if body.is_empty() {
        println!("{}", status.canonical_reason().unwrap_or("ok"));
    } else {
        match serde_json::from_str::<Value>(&body) {
            Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body)),
            Err(_) => println!("{body}"),
        }
    }
    Ok(())
}

/// `veto revoke`.
pub(crate) fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let keys = args.keys;
    let body = RevokeRequest {
        scope: args.scope,
        iss: keys.iss,
        jti: keys.jti,
        sid: keys.sid,
        sub: keys.sub,
        client_id: keys.client_id,
        kid: keys.kid,
        token: args.token,
        before: args.before,
        expires_at: args.expires_at,
        reason: args.reason,
        actor: args.actor,
    };
    let req = client()?
        .post(url(&args.node.node, "/v1/revocations"))
        .json(&body);
    finish(&args.node.node, with_admin(req, &args.node)?.send())
}

/// `veto check`.
pub(crate) fn check(args: CheckArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    let k = &args.keys;
    for (name, value) in [
        ("iss", &k.iss),
        ("jti", &k.jti),
        ("sid", &k.sid),
        ("sub", &k.sub),
        ("client_id", &k.client_id),
        ("kid", &k.kid),
        ("token", &args.token),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    if let Some(iat) = args.iat {
        query.push(("iat", iat.to_string()));
    }
    if query.is_empty() {
        bail!("give at least one of --iss, --jti, --sid, --sub, --client-id, --kid or --token");
    }
    finish(
        &args.node,
        client()?
            .get(url(&args.node, "/v1/check"))
            .query(&query)
            .send(),
    )
}

/// `veto peers list|add|remove`.
pub(crate) fn peers(cmd: PeersCommand) -> anyhow::Result<()> {
    let c = client()?;
    match cmd {
        PeersCommand::List(node) => finish(
            &node.node,
            with_admin(c.get(url(&node.node, "/v1/peers")), &node)?.send(),
        ),
        PeersCommand::Add { node, addr, name } => {
            let req = c
                .post(url(&node.node, "/v1/peers"))
                .json(&json!({"addr": addr, "name": name}));
            finish(&node.node, with_admin(req, &node)?.send())
        }
        PeersCommand::Remove { node, peer } => {
            let path = format!("/v1/peers/{}", urlencode(&peer));
            finish(
                &node.node,
                with_admin(c.delete(url(&node.node, &path)), &node)?.send(),
            )
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `veto status`.
pub(crate) fn status(node: NodeArgs) -> anyhow::Result<()> {
    finish(
        &node.node,
        client()?.get(url(&node.node, "/v1/status")).send(),
    )
}

/// `veto cert ca|node`.
pub(crate) fn cert(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Ca { out, force } => {
            let written = veto_transport::tls::write_ca(&out, force)?;
            println!(
                "wrote {}\nwrote {}",
                written.cert.display(),
                written.key.display()
            );
        }
        CertCommand::Node {
            ca_dir,
            name,
            out,
            force,
        } => {
            let written = veto_transport::tls::write_node(&ca_dir, &name, &out, force)?;
            println!(
                "wrote {}\nwrote {}",
                written.cert.display(),
                written.key.display()
            );
        }
    }
    Ok(())
}
