//! `deploy/kubernetes/*.yaml`: kubernetes-validate checks every manifest
//! against the Kubernetes API schemas, the manifests agree with each other
//! and with the node (ports, probes, flags, secret names, the certificate's
//! name), and the pod's own command line, with its ConfigMap and a
//! certificate made the way cert-manager's CA issuer makes one, starts a node
//! that replicates with a peer.
//!
//! Skipped with a message when kubernetes-validate (PyPI) or openssl is not
//! installed, unless `VETO_REQUIRE_GATEWAYS=1` (then they fail): see
//! `scripts/install-test-deps.sh`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{
    eventually, find_executable, free_port, free_udp_port, make_certs, python, python_runs,
    require_gateway, tls_args, veto_bin, Veto, ADMIN_TOKEN,
};

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

/// The manifests' documents as JSON (PyYAML, which kubernetes-validate
/// brings, parses them); `None` when it is missing.
fn documents() -> Option<Vec<Value>> {
    require_gateway(
        "kubernetes-validate (and its PyYAML)",
        Some(()).filter(|()| python_runs("import kubernetes_validate, yaml")),
    )?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/deploy_yaml_to_json.py");
    let out = Command::new(python())
        .arg(script)
        .args(manifests())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn kinds<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn kubernetes_validate_accepts_every_manifest() {
    let Some(docs) = documents() else {
        return;
    };
    let out = Command::new(python())
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(manifests())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate:\n{said}");
    // Every core resource was checked against its schema; only cert-manager's
    // kinds have none there (they are checked in the next test).
    let passed = said.lines().filter(|l| l.contains(" passed for ")).count();
    let crds = docs
        .iter()
        .filter(|d| s(&d["apiVersion"]).starts_with("cert-manager.io/"))
        .count();
    assert_eq!(passed + crds, docs.len(), "kubernetes-validate:\n{said}");
    for line in said.lines().filter(|l| !l.contains(" passed for ")) {
        assert!(
            line.contains(
                "Couldn't find schema for kind Issuer with api version cert-manager.io/v1"
            ) || line.contains(
                "Couldn't find schema for kind Certificate with api version cert-manager.io/v1"
            ),
            "kubernetes-validate: {line}"
        );
    }
}

/// The pod's container and the settings file it runs with.
fn pod(docs: &[Value]) -> (&Value, &Value, toml::Table) {
    let sts = find(docs, "StatefulSet", "veto");
    let spec = &sts["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"].is_object())
        .expect("a ConfigMap volume");
    let cm = find(docs, "ConfigMap", s(&volume["configMap"]["name"]));
    let config: toml::Table = s(&cm["data"]["veto.toml"]).parse().expect("veto.toml");
    (sts, container, config)
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_manifests_agree_with_each_other_and_with_the_node() {
    let Some(docs) = documents() else {
        return;
    };
    let (sts, container, config) = pod(&docs);
    let spec = &sts["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(spec["replicas"], 1, "one node per region");

    // Services and the budget select the pod.
    let selects = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| pod_labels[k] == *v)
    };
    assert!(selects(&spec["selector"]["matchLabels"]));
    let headless = find(&docs, "Service", s(&spec["serviceName"]));
    assert_eq!(headless["spec"]["clusterIP"], "None");
    for svc in kinds(&docs, "Service") {
        assert!(
            selects(&svc["spec"]["selector"]),
            "{}",
            svc["metadata"]["name"]
        );
    }
    for pdb in kinds(&docs, "PodDisruptionBudget") {
        assert!(selects(&pdb["spec"]["selector"]["matchLabels"]));
    }

    // Ports: the container's are those the node listens on.
    let ports = container["ports"].as_array().unwrap();
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name}"))
    };
    assert_eq!(
        port("http")["containerPort"],
        port_of(config["listen"].as_str().unwrap())
    );
    assert_eq!(
        port("gossip")["containerPort"],
        port_of(config["gossip_listen"].as_str().unwrap())
    );
    assert_eq!(port("gossip")["protocol"], "UDP");
    assert!(config["listen"].as_str().unwrap().starts_with("0.0.0.0:"));
    let gossip = find(&docs, "Service", "veto-gossip");
    assert_eq!(gossip["spec"]["ports"][0]["protocol"], "UDP");

    // Probes.
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");

    // Every flag exists, and every file it names is mounted.
    let help = Command::new(veto_bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(args[0], "serve");
    let mounts = container["volumeMounts"].as_array().unwrap();
    let volumes = spec["template"]["spec"]["volumes"].as_array().unwrap();
    let claims: Vec<&str> = spec["volumeClaimTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["metadata"]["name"]))
        .collect();
    for pair in args[1..].chunks(2) {
        assert!(
            help.contains(&format!("{} <", pair[0])),
            "veto serve has no {}",
            pair[0]
        );
        let mount = mounts
            .iter()
            .find(|m| {
                pair[1].starts_with(&format!("{}/", s(&m["mountPath"])))
                    || pair[1] == s(&m["mountPath"])
            })
            .unwrap_or_else(|| panic!("{} {} is not on a mounted volume", pair[0], pair[1]));
        let name = s(&mount["name"]);
        assert!(
            volumes.iter().any(|v| v["name"] == name) || claims.contains(&name),
            "volume {name}"
        );
    }
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);

    // The certificate cert-manager issues is the Secret the pod mounts, with
    // the node's name as its common name, from the cluster CA's issuer.
    let cert = &kinds(&docs, "Certificate")[0]["spec"];
    let tls = volumes
        .iter()
        .find(|v| v["name"] == "tls")
        .expect("a tls volume");
    assert_eq!(tls["secret"]["secretName"], cert["secretName"]);
    assert_eq!(cert["commonName"].as_str(), config["name"].as_str());
    let issuer = find(
        &docs,
        s(&cert["issuerRef"]["kind"]),
        s(&cert["issuerRef"]["name"]),
    );
    assert!(issuer["spec"]["ca"]["secretName"].is_string());
    // cert-manager.io/v1 has no schema in kubernetes-validate: its field names
    // and usages, as cert-manager documents them.
    let known = [
        "secretName",
        "commonName",
        "dnsNames",
        "duration",
        "renewBefore",
        "privateKey",
        "usages",
        "issuerRef",
        "subject",
        "ipAddresses",
        "uris",
        "emailAddresses",
        "isCA",
        "secretTemplate",
        "revisionHistoryLimit",
        "keystores",
        "literalSubject",
        "nameConstraints",
        "otherNames",
        "encodeUsagesInRequest",
        "additionalOutputFormats",
    ];
    for key in cert.as_object().unwrap().keys() {
        assert!(known.contains(&key.as_str()), "Certificate spec.{key}");
    }
    for usage in cert["usages"].as_array().unwrap() {
        assert!(
            [
                "digital signature",
                "server auth",
                "client auth",
                "key encipherment"
            ]
            .contains(&s(usage)),
            "usage {usage}"
        );
    }
    for key in cert["privateKey"].as_object().unwrap().keys() {
        assert!(
            ["algorithm", "size", "encoding", "rotationPolicy"].contains(&key.as_str()),
            "Certificate spec.privateKey.{key}"
        );
    }
    assert_eq!(cert["privateKey"]["algorithm"], "ECDSA");
    assert_eq!(cert["privateKey"]["encoding"], "PKCS8");
}

/// Runs openssl, asserting success.
fn openssl(bin: &Path, dir: &Path, args: &[&str]) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_pods_command_line_starts_a_node_with_a_cert_manager_style_certificate() {
    let Some(docs) = documents() else {
        return;
    };
    let Some(openssl_bin) = require_gateway("openssl", find_executable("openssl")) else {
        return;
    };
    let (_, container, config) = pod(&docs);
    let cert_spec = &kinds(&docs, "Certificate")[0]["spec"];
    let name = s(&cert_spec["commonName"]);

    // The cluster CA from `veto cert ca`, and the peer's certificate from
    // `veto cert node`.
    let root = tempfile::tempdir().unwrap();
    let certs = root.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certs(&certs, &["eu-west"]);

    // The pod's file system: every mount becomes a directory under `root`.
    let pod_path = |p: &str| root.path().join(p.trim_start_matches('/'));
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount_of = |volume: &str| {
        let m = mounts.iter().find(|m| m["name"] == volume).unwrap();
        let dir = pod_path(s(&m["mountPath"]));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    std::fs::write(
        mount_of("config").join("veto.toml"),
        toml::to_string(&config).unwrap(),
    )
    .unwrap();
    let admin = mount_of("admin-token");
    std::fs::write(admin.join("admin-token"), ADMIN_TOKEN).unwrap();
    let data = mount_of("data");

    // What cert-manager's CA issuer writes for the Certificate: an ECDSA
    // P-256 key in PKCS#8, the leaf followed by the CA in tls.crt, the CA in
    // ca.crt.
    let tls = mount_of("tls");
    let c = certs.display().to_string();
    openssl(
        &openssl_bin,
        &tls,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "tls.key",
        ],
    );
    std::fs::write(
        tls.join("ext.cnf"),
        format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{}\n\
             authorityKeyIdentifier=keyid\n",
            s(&cert_spec["dnsNames"][0])
        ),
    )
    .unwrap();
    openssl(
        &openssl_bin,
        &tls,
        &[
            "req",
            "-new",
            "-key",
            "tls.key",
            "-subj",
            &format!("/CN={name}"),
            "-out",
            "tls.csr",
        ],
    );
    openssl(
        &openssl_bin,
        &tls,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            &format!("{c}/ca.pem"),
            "-CAkey",
            &format!("{c}/ca.key"),
            "-set_serial",
            "0x5eed",
            "-days",
            "90",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );
    let ca = std::fs::read_to_string(certs.join("ca.pem")).unwrap();
    let leaf = std::fs::read_to_string(tls.join("leaf.pem")).unwrap();
    std::fs::write(tls.join("tls.crt"), format!("{leaf}{ca}")).unwrap();
    std::fs::write(tls.join("ca.crt"), &ca).unwrap();
    for f in ["leaf.pem", "tls.csr", "ext.cnf"] {
        std::fs::remove_file(tls.join(f)).unwrap();
    }

    // The container's command line, its paths under `root`; on loopback
    // instead of 0.0.0.0, and peered with the test's node (flags win over
    // the file).
    let (http, gossip, peer_port) = (free_port(), free_udp_port(), free_udp_port());
    let mut args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = s(a);
            if a.starts_with('/') {
                pod_path(a).display().to_string()
            } else {
                a.to_owned()
            }
        })
        .collect();
    args.extend([
        "--listen".into(),
        format!("127.0.0.1:{http}"),
        "--gossip-listen".into(),
        format!("127.0.0.1:{gossip}"),
        "--peer".into(),
        format!("127.0.0.1:{peer_port}"),
    ]);
    let mut cmd = Command::new(veto_bin());
    cmd.args(&args).env_remove("VETO_ADMIN_TOKEN");
    for env in container["env"].as_array().into_iter().flatten() {
        cmd.env(s(&env["name"]), s(&env["value"]));
    }
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Veto {
        child,
        url: format!("http://127.0.0.1:{http}"),
        data_dir: data,
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        args: Vec::new(),
        env: Vec::new(),
    };
    node.wait_ready(Duration::from_secs(30));

    // The kubelet's probes succeed.
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = s(&container[probe]["httpGet"]["path"]);
        assert_eq!(node.get(path).status(), 200, "{probe} {path}");
    }
    let status = node.status();
    assert_eq!(status["node"]["name"], name);
    assert_eq!(status["node"]["region"], config["region"].as_str().unwrap());

    // The certificate is good for mutual TLS with a `veto cert` peer, and the
    // admin token from its Secret authorizes writes.
    // It lists the pod back: a node accepts a dial-in only from a peer it lists.
    let mut peer_args = tls_args(&certs, "eu-west", peer_port, "eu-west");
    peer_args.extend(["--peer".into(), format!("127.0.0.1:{gossip}")]);
    let peer = Veto::start_with(&root.path().join("eu-west"), &peer_args);
    eventually(Duration::from_secs(30), "connected", || {
        node.status()["peers"][0]["state"] == "connected"
    });
    node.revoke(json!({"scope": "token", "iss": "https://idp", "jti": "from-k8s"}));
    eventually(Duration::from_secs(30), "replicated to eu-west", || {
        peer.revoked(&[("iss", "https://idp"), ("jti", "from-k8s")])
    });
    let names: Vec<Value> = peer.status()["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert!(
        names.contains(&json!(name)),
        "eu-west knows its peer as {names:?}"
    );
}
