//! Scoped credentials against a real node: every route with no token and
//! with a token of each role (a table), the audit trail's `actor` taken from
//! the token, `veto token add`, and the tokens file reloaded on SIGHUP.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reqwest::blocking::RequestBuilder;
use reqwest::Method;
use serde_json::{json, Value};
use support::{eventually, Veto, ADMIN_TOKEN};

/// Runs `veto token add` and returns the token it printed.
fn token_add(file: &Path, name: &str, roles: &[&str]) -> String {
    let mut cmd = Command::new(support::veto_bin());
    cmd.args(["token", "add", "--name", name, "--tokens-file"])
        .arg(file);
    for r in roles {
        cmd.args(["--role", r]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "veto token add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.len() >= 32, "a long random token: {token:?}");
    token
}

fn hangup(node: &Veto) {
    let pid = node.child.id().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success(), "kill -HUP {pid}");
}

/// Who calls: no token, or a token with these roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Nobody,
    Read,
    Revoke,
    Audit,
    Admin,
}

const EVERYONE: [Who; 5] = [Who::Nobody, Who::Read, Who::Revoke, Who::Audit, Who::Admin];

struct Tokens {
    read: String,
    revoke: String,
    audit: String,
}

impl Tokens {
    fn of(&self, who: Who) -> Option<&str> {
        match who {
            Who::Nobody => None,
            Who::Read => Some(&self.read),
            Who::Revoke => Some(&self.revoke),
            Who::Audit => Some(&self.audit),
            Who::Admin => Some(ADMIN_TOKEN),
        }
    }
}

fn start(dir: &Path) -> (Veto, Tokens, std::path::PathBuf) {
    let file = dir.join("tokens.toml");
    let tokens = Tokens {
        read: token_add(&file, "edge-gw", &["read"]),
        revoke: token_add(&file, "soc-bot", &["revoke"]),
        audit: token_add(&file, "auditor", &["audit"]),
    };
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the tokens file is private");
    let data = dir.join("data");
    let veto = Veto::start(&data, &["--tokens-file", file.to_str().unwrap()]);
    (veto, tokens, file)
}

#[test]
fn every_route_answers_each_role_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let (veto, tokens, _) = start(dir.path());
    let record = veto.revoke(json!({"scope": "token", "iss": "https://idp", "jti": "seed"}));
    let receipt = format!("/v1/revocations/{}/receipt", record["id"].as_str().unwrap());

    use Who::*;
    // (method, path, body, who may): everyone else gets 401 without a token
    // and 403 with one.
    let revoke_body = json!({"scope": "token", "iss": "https://idp", "jti": "x"});
    let routes: Vec<(Method, &str, Option<Value>, &[Who])> = vec![
        (
            Method::GET,
            "/v1/check?iss=https://idp&jti=x",
            None,
            &EVERYONE,
        ),
        (Method::GET, "/healthz", None, &EVERYONE),
        (Method::GET, "/readyz", None, &EVERYONE),
        (Method::GET, "/metrics", None, &EVERYONE),
        (Method::GET, "/v1/status", None, &EVERYONE),
        (Method::GET, "/openapi.json", None, &EVERYONE),
        (Method::GET, "/ui", None, &EVERYONE),
        (
            Method::GET,
            "/v1/watch?heartbeat=1",
            None,
            &[Read, Audit, Admin],
        ),
        (Method::GET, "/v1/snapshot", None, &[Read, Audit, Admin]),
        (
            Method::POST,
            "/v1/revocations",
            Some(revoke_body.clone()),
            &[Revoke, Admin],
        ),
        (
            Method::POST,
            "/v1/revocations/batch",
            Some(json!([revoke_body])),
            &[Revoke, Admin],
        ),
        // Evicting a node is membership: admin only, whatever the endpoint.
        (
            Method::POST,
            "/v1/revocations",
            Some(json!({"scope": "peer", "name": "ghost"})),
            &[Admin],
        ),
        (Method::GET, "/v1/revocations", None, &[Audit, Admin]),
        (Method::GET, &receipt, None, &[Revoke, Audit, Admin]),
        (Method::GET, "/v1/peers", None, &[Admin]),
        (
            Method::POST,
            "/v1/peers",
            Some(json!({"addr": "127.0.0.1:1"})),
            &[Admin],
        ),
        (Method::DELETE, "/v1/peers/nowhere", None, &[Admin]),
    ];
    let mut table = String::new();
    for (method, path, body, allowed) in &routes {
        for who in EVERYONE {
            let mut req: RequestBuilder = veto
                .http
                .request(method.clone(), format!("{}{path}", veto.url));
            if let Some(token) = tokens.of(who) {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().unwrap();
            let status = resp.status().as_u16();
            let want = if allowed.contains(&who) {
                "allowed"
            } else if who == Nobody {
                "401"
            } else {
                "403"
            };
            let got = match status {
                401 => "401",
                403 => "403",
                _ => "allowed",
            };
            table.push_str(&format!("{method} {path} as {who:?}: {status}\n"));
            assert_eq!(got, want, "{method} {path} as {who:?}: {status}\n{table}");
            if got != "allowed" {
                let err: Value = resp.json().unwrap();
                let code = if got == "401" {
                    "unauthorized"
                } else {
                    "forbidden"
                };
                assert_eq!(err["error"], code, "{method} {path} as {who:?}");
            }
        }
    }

    // RFC 7009 with the token as client secret: the revoke role or admin.
    for (who, want) in [
        (Nobody, 401),
        (Read, 403),
        (Revoke, 200),
        (Audit, 403),
        (Admin, 200),
    ] {
        let mut req = veto
            .http
            .post(format!("{}/oauth2/revoke", veto.url))
            .form(&[("token", "opaque-rfc7009")]);
        if let Some(token) = tokens.of(who) {
            req = req.basic_auth("gw-client", Some(token));
        }
        let status = req.send().unwrap().status().as_u16();
        assert_eq!(status, want, "/oauth2/revoke as {who:?}");
    }
    // A token the node does not know is 401 everywhere that needs one.
    let r = veto
        .http
        .get(format!("{}/v1/snapshot", veto.url))
        .bearer_auth("veto_not-a-token-of-this-node-0000000000")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn the_token_names_the_actor_and_a_read_token_sees_no_audit_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (veto, tokens, _) = start(dir.path());
    let r = veto
        .http
        .post(format!("{}/v1/revocations", veto.url))
        .bearer_auth(&tokens.revoke)
        .json(
            &json!({"scope": "subject", "sub": "mallory", "reason": "INC-7", "actor": "alice@soc"}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let rec: Value = r.json().unwrap();
    assert_eq!(
        rec["actor"], "soc-bot",
        "the authenticated token's name: {rec}"
    );
    assert_eq!(rec["on_behalf_of"], "alice@soc", "{rec}");

    let audit: Value = veto
        .http
        .get(format!("{}/v1/revocations?key=mallory", veto.url))
        .bearer_auth(&tokens.audit)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(audit["records"][0]["actor"], "soc-bot");
    assert_eq!(audit["records"][0]["on_behalf_of"], "alice@soc");

    let snapshot = |token: &str| -> Vec<Value> {
        let text = veto
            .http
            .get(format!("{}/v1/snapshot", veto.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v.get("scope").is_some())
            .collect()
    };
    let slim = snapshot(&tokens.read);
    assert_eq!(slim.len(), 1);
    assert_eq!(slim[0]["sub"], "mallory");
    assert!(slim[0]["before"].is_u64() && slim[0]["expires_at"].is_u64());
    for field in ["reason", "actor", "on_behalf_of"] {
        assert!(
            slim[0].get(field).is_none(),
            "read sees no {field}: {}",
            slim[0]
        );
    }
    let full = snapshot(&tokens.audit);
    assert_eq!(full[0]["reason"], "INC-7");
}

#[test]
fn sighup_reloads_the_tokens_file_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (veto, tokens, file) = start(dir.path());
    let status = |token: &str| {
        veto.http
            .get(format!("{}/v1/revocations", veto.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let newcomer = token_add(&file, "late-auditor", &["audit"]);
    assert_eq!(status(&newcomer), 401, "not loaded before SIGHUP");
    hangup(&veto);
    eventually(Duration::from_secs(10), "the new token is accepted", || {
        status(&newcomer) == 200
    });

    // A broken file is refused as a whole: the tokens stay as they were.
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{good}\n[[tokens]]\nname = \"x\"\nroles = [\"root\"]\nsha256 = \"00\"\n"),
    )
    .unwrap();
    hangup(&veto);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&newcomer), 200);
    assert_eq!(status(&tokens.audit), 200);
    let metrics = veto.get("/metrics").text().unwrap();
    eventually(
        Duration::from_secs(10),
        "the refused reload is counted",
        || {
            veto.get("/metrics")
                .text()
                .unwrap()
                .contains("veto_tokens_reloads_total{result=\"error\"} 1")
        },
    );
    assert!(metrics.contains("veto_tokens_reloads_total"), "{metrics}");

    // Tokens gone from the file stop working at the next reload.
    std::fs::write(&file, "").unwrap();
    hangup(&veto);
    eventually(
        Duration::from_secs(10),
        "an emptied file leaves only the admin token",
        || status(&newcomer) == 401 && status(&tokens.audit) == 401,
    );
    assert_eq!(status(ADMIN_TOKEN), 200);
}

#[test]
fn token_add_refuses_what_the_node_could_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    token_add(&file, "soc-bot", &["revoke", "audit"]);
    let run = |args: &[&str]| {
        Command::new(support::veto_bin())
            .args(["token", "add", "--tokens-file"])
            .arg(&file)
            .args(args)
            .output()
            .unwrap()
    };
    for (args, words) in [
        (
            vec!["--name", "soc-bot", "--role", "read"],
            "already has a token named",
        ),
        (vec!["--name", "x", "--role", "root"], "not a role"),
        (
            vec!["--name", "bad name", "--role", "read"],
            "not allowed in a name",
        ),
        (vec!["--name", "x"], "--role"),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "no token printed for {args:?}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text.matches("[[tokens]]").count(),
        1,
        "nothing added: {text}"
    );
    assert!(text.contains("roles = [\"revoke\", \"audit\"]"), "{text}");

    // A node refuses to start on a tokens file it cannot use, naming it.
    std::fs::write(
        &file,
        "[[tokens]]\nname = \"a\"\nroles = [\"read\"]\nsha256 = \"zz\"\n",
    )
    .unwrap();
    let out = Command::new(support::veto_bin())
        .args(["serve", "--tokens-file"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0"])
        .env("VETO_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens file") && err.contains("64 hex"),
        "{err}"
    );
}
