//! Three regions over real QUIC links slowed by `veto-relay`: us-east
//! reaches eu-west and ap-south each through its own link (a relay each way,
//! since both ends list each other), so a test can delay or partition one
//! region.

use std::time::Duration;

use serde_json::Value;

use super::{eventually, free_udp_port, make_certs, tls_args, Link, Veto};

/// us-east and eu-west dial each other through a link with `eu_ms` one way,
/// us-east and ap-south through one with `ap_ms`; eu-west and ap-south only hear each other
/// through us-east. Anti-entropy every 5 s: only prompt reports answer a
/// receipt sooner.
pub struct Regions {
    pub us: Veto,
    pub eu: Veto,
    pub ap: Veto,
    pub to_eu: Link,
    pub to_ap: Link,
    _dirs: Vec<tempfile::TempDir>,
    _certs: tempfile::TempDir,
}

/// Starts the three regions and waits until every node has heard from
/// every origin.
pub fn regions(eu_ms: u64, ap_ms: u64) -> Regions {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), &["us", "eu", "ap"]);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
    let args = |i: usize, name: &str, region: &str| {
        let mut a = tls_args(certs.path(), name, ports[i], region);
        let ae = a.iter().position(|x| x == "--anti-entropy-ms").unwrap();
        a[ae + 1] = "5000".into();
        a
    };
    let to_eu = Link::start(ports[0], ports[1], 11);
    let to_ap = Link::start(ports[0], ports[2], 12);
    to_eu.command(&format!("delay {eu_ms}"));
    to_ap.command(&format!("delay {ap_ms}"));
    let back = |mut a: Vec<String>, link: &Link| {
        a.extend(["--peer".into(), format!("127.0.0.1:{}", link.back.listen)]);
        a
    };
    let eu = Veto::start_with(dirs[1].path(), &back(args(1, "eu", "eu-west"), &to_eu));
    let ap = Veto::start_with(dirs[2].path(), &back(args(2, "ap", "ap-south"), &to_ap));
    let mut us_args = args(0, "us", "us-east");
    for link in [&to_eu, &to_ap] {
        us_args.extend(["--peer".into(), format!("127.0.0.1:{}", link.there.listen)]);
    }
    let us = Veto::start_with(dirs[0].path(), &us_args);
    let r = Regions {
        us,
        eu,
        ap,
        to_eu,
        to_ap,
        _dirs: dirs,
        _certs: certs,
    };
    // Every node reports every other before the test starts.
    eventually(
        Duration::from_secs(20),
        "every origin known everywhere",
        || {
            [&r.us, &r.eu, &r.ap].iter().all(|n| {
                origins(n)
                    .iter()
                    .filter(|o| !o["complete_through"].is_null())
                    .count()
                    == 3
            })
        },
    );
    r
}

/// The `origins` of a node's `/v1/status`.
pub fn origins(node: &Veto) -> Vec<Value> {
    node.status()["origins"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
