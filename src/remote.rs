//! The operator commands that talk to a node's HTTP API (`revoke`, `check`,
//! `peers`, `status`) and the local `cert` command.
//!
//! Each remote command is one call of veto-client on a small single-threaded
//! runtime. It prints the node's answer as pretty JSON with its keys in
//! alphabetical order, and turns an error answer into one line,
//! `<status>: <the API's message>`; either way the exit code says which.
//! `veto revoke --wait` adds the receipt's table (see [`crate::revoke_wait`]).
//!
//! An `https://` node is trusted by the system's roots, and by the CA in
//! `VETO_CA` (PEM) when its certificate is from a private one. A node
//! started with `--api-tls-client-ca` takes writes only from a client
//! certificate: `VETO_CLIENT_CERT` and `VETO_CLIENT_KEY` (PEM) give it.

use std::future::Future;

use anyhow::{bail, Context as _};
use serde::Serialize;
use veto_client::{CheckAnswer, Claims, Client, ClientError, RevokeRequest, Revoked};

use crate::cli::{CertCommand, CheckArgs, NodeArgs, PeersCommand, RevokeArgs};
use crate::revoke_wait;

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

/// Runs `call` against the node at `url` (with the admin token, if given).
fn call_node<F, T>(
    url: &str,
    admin: Option<String>,
    call: impl FnOnce(Client) -> F,
) -> anyhow::Result<T>
where
    F: Future<Output = Result<T, ClientError>>,
{
    let mut client = Client::with_http(url, tls_client()?).map_err(|e| failure(url, e))?;
    if let Some(token) = admin {
        client = client.with_admin_token(token);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(call(client)).map_err(|e| failure(url, e))
}

/// The HTTP client of the remote commands, with the TLS trust and client
/// certificate of `VETO_CA`, `VETO_CLIENT_CERT` and `VETO_CLIENT_KEY`.
fn tls_client() -> anyhow::Result<reqwest::Client> {
    let read = |var: &str| -> anyhow::Result<Option<Vec<u8>>> {
        let Some(path) = std::env::var_os(var) else {
            return Ok(None);
        };
        let path = std::path::PathBuf::from(path);
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read {var} file {}", path.display()))?;
        Ok(Some(pem))
    };
    let mut builder = Client::http_builder();
    if let Some(pem) = read("VETO_CA")? {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|certs| !certs.is_empty())
            .context("VETO_CA: no PEM certificate in the file")?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    match (read("VETO_CLIENT_CERT")?, read("VETO_CLIENT_KEY")?) {
        (Some(mut cert), Some(key)) => {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            let identity = reqwest::Identity::from_pem(&cert).context(
                "VETO_CLIENT_CERT and VETO_CLIENT_KEY are not a PEM certificate and key",
            )?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => bail!("VETO_CLIENT_CERT and VETO_CLIENT_KEY go together: set both or neither"),
    }
    builder.build().context("cannot set up the HTTP client")
}

/// One clear line for a failed call.
fn failure(url: &str, err: ClientError) -> anyhow::Error {
    match err {
        ClientError::Api {
            status, message, ..
        } => {
            // As `401 Unauthorized`: the code and its reason phrase.
            let status = reqwest::StatusCode::from_u16(status)
                .map_or_else(|_| status.to_string(), |s| s.to_string());
            anyhow::anyhow!("{status}: {message}")
        }
        ClientError::Transport(e) => {
            anyhow::Error::new(e).context(format!("cannot reach the node at {url}"))
        }
        ClientError::NoAdminToken => anyhow::anyhow!(
            "this command needs the admin token: give --admin-token or --admin-token-file, or set VETO_ADMIN_TOKEN"
        ),
        ClientError::Url(_) => {
            anyhow::anyhow!("cannot reach the node at {url}: not an http:// or https:// URL")
        }
        other => anyhow::Error::new(other).context(format!("the node at {url}")),
    }
}

/// Prints a value as pretty JSON, keys in alphabetical order.
fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let value = serde_json::to_value(value).context("cannot encode the answer")?;
    let text = serde_json::to_string_pretty(&value).context("cannot encode the answer")?;
    println!("{text}");
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
        name: None,
        cert_sha256: None,
        before: args.before,
        expires_at: args.expires_at,
        reason: args.reason,
        actor: args.actor,
    };
    let admin = admin_token(&args.node)?;
    let Some(wait) = args.wait else {
        let record = call_node(&args.node.node, admin, |c| async move {
            c.revoke_view(&body).await
        })?;
        return print_json(&record);
    };
    let timeout = args.timeout.unwrap_or(revoke_wait::DEFAULT_TIMEOUT);
    let sent_wait = wait.clone();
    let (sent_at, waited) = call_node(&args.node.node, admin, |c| async move {
        // Taken after the runtime and client are up: as close to the send
        // as this process can see.
        let sent_at = revoke_wait::unix_now();
        let waited = c.revoke_wait(&body, &sent_wait, timeout).await?;
        Ok((sent_at, waited))
    })?;
    print_json(&waited.stored)?;
    println!();
    revoke_wait::report(&waited, &wait, timeout, sent_at, revoke_wait::unix_now())
}

/// `veto check`.
pub(crate) fn check(args: CheckArgs) -> anyhow::Result<()> {
    let claims = args.keys.into_claims(args.iat);
    let has_claims = claims != Claims::default();
    let hit = match args.token {
        Some(_) if has_claims => bail!(
            "give either --token or claims (--iss, --jti, ...), not both: a token's claims are read from it"
        ),
        Some(token) => call_node(&args.node, None, |c| async move {
            c.check_token(&token).await
        })?,
        None if has_claims => call_node(&args.node, None, |c| async move {
            c.check(&claims).await
        })?,
        None => bail!(
            "give at least one of --iss, --jti, --sid, --sub, --client-id, --kid or --token"
        ),
    };
    print_json(
        &hit.as_ref()
            .map_or_else(CheckAnswer::default, Revoked::answer),
    )
}

/// `veto peers list|add|remove`.
pub(crate) fn peers(cmd: PeersCommand) -> anyhow::Result<()> {
    match cmd {
        PeersCommand::List(node) => {
            let peers = call_node(&node.node, admin_token(&node)?, |c| async move {
                c.peers().await
            })?;
            print_json(&serde_json::json!({ "peers": peers }))
        }
        PeersCommand::Add { node, addr, name } => {
            let peer = call_node(&node.node, admin_token(&node)?, |c| async move {
                c.add_peer(&addr, name.as_deref()).await
            })?;
            print_json(&peer)
        }
        PeersCommand::Remove { node, peer } => {
            call_node(&node.node, admin_token(&node)?, |c| async move {
                c.remove_peer(&peer).await
            })?;
            // The node answers 204, with no body.
            println!("No Content");
            Ok(())
        }
        PeersCommand::RevokeCert { node, cert, reason } => {
            let body = crate::peers::revoke_cert_request(&cert, reason);
            let record = call_node(&node.node, admin_token(&node)?, |c| async move {
                c.revoke_view(&body).await
            })?;
            print_json(&record)
        }
    }
}

/// `veto status`.
pub(crate) fn status(node: NodeArgs) -> anyhow::Result<()> {
    let status = call_node(&node.node, None, |c| async move { c.status().await })?;
    print_json(&status)
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
            days,
            force,
        } => {
            let written = veto_transport::tls::write_node_for(&ca_dir, &name, &out, force, days)?;
            let sha256 = veto_transport::tls::cert_file_sha256(&written.cert)?;
            println!(
                "wrote {}\nwrote {}\nsha256 {} (valid {days} days; revoke it with `veto peers revoke-cert {}`)",
                written.cert.display(),
                written.key.display(),
                hex::encode(sha256),
                hex::encode(sha256),
            );
        }
    }
    Ok(())
}
