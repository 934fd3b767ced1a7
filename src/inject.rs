//! Deliberate bugs for the tests that prove the checks catch them, named in
//! `VETO_INJECT_BUG` (for example `ack-before-durable`). Only builds with the
//! `inject-bugs` cargo feature read it; release builds ignore it.

use veto_node::Faults;

/// The faults `VETO_INJECT_BUG` asks for, in a build that allows them.
pub(crate) fn faults_from_env() -> anyhow::Result<Faults> {
    let Ok(list) = std::env::var("VETO_INJECT_BUG") else {
        return Ok(Faults::none());
    };
    if cfg!(feature = "inject-bugs") {
        let faults = Faults::parse(&list)?;
        if faults.any() {
            tracing::error!(
                faults = %list,
                "DELIBERATE BUGS INJECTED: this node can lose acknowledged revocations; for tests only"
            );
        }
        Ok(faults)
    } else {
        tracing::warn!(
            faults = %list,
            "VETO_INJECT_BUG is set, but this build has no fault injection; ignored"
        );
        Ok(Faults::none())
    }
}
