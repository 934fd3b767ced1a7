//! `veto demo --once` starts three regions, revokes at one, and reports the
//! time to enforcement at the other two.

mod support;

#[test]
fn the_demo_shows_a_revocation_reaching_every_region() {
    let out = std::process::Command::new(support::veto_bin())
        .args(["demo", "--once"])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for region in ["eu-west", "ap-south"] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("enforced at {region}")))
            .unwrap_or_else(|| panic!("no timing for {region}: {stdout}"));
        let ms: f64 = line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap();
        // The relays add 38 and 95 ms one way: enforcement cannot beat the wire.
        let floor = if region == "eu-west" { 38.0 } else { 95.0 };
        assert!(
            ms >= floor,
            "{region} enforced in {ms} ms, faster than its link delay"
        );
    }
}
