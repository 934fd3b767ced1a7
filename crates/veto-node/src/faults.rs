//! Deliberate bugs in the node's write path, for proving that the checks
//! catch them: the simulator's invariants (`veto-sim --inject-bug`) and a
//! real-process test (`VETO_INJECT_BUG`, in builds with the `inject-bugs`
//! feature only). Both run this code, so a seed that catches a bug here
//! catches it in the node the binary runs.

use std::collections::BTreeSet;

use veto_gossip::engine::Config;

/// One deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A local revocation is acknowledged before its record is durable: a
    /// crash right after the answer loses an acknowledged revocation.
    AckBeforeDurable,
    /// A record received from a peer counts in the advertised frontier
    /// before it is durable: peers stop sending what this node may lose.
    AdvertiseBeforeDurable,
    /// This node's report of what it holds, which receipts are made from,
    /// counts received records before they are durable: a receipt says
    /// "enforced" for a record a crash can still take away.
    ReportBeforeDurable,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 3] = [
        Fault::AckBeforeDurable,
        Fault::AdvertiseBeforeDurable,
        Fault::ReportBeforeDurable,
    ];

    /// Its name on command lines and in `VETO_INJECT_BUG`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::AckBeforeDurable => "ack-before-durable",
            Fault::AdvertiseBeforeDurable => "advertise-before-durable",
            Fault::ReportBeforeDurable => "report-before-durable",
        }
    }

    /// The fault called `name`.
    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The faults a node runs with: none, unless a test asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults(BTreeSet<Fault>);

/// A fault name that is not one of [`Fault::ALL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown fault {0:?} (known: ack-before-durable, advertise-before-durable, report-before-durable)"
)]
pub struct UnknownFault(pub String);

impl Faults {
    /// No faults: the node as it ships.
    pub fn none() -> Faults {
        Faults::default()
    }

    /// The faults named in a comma-separated list.
    pub fn parse(list: &str) -> Result<Faults, UnknownFault> {
        let mut faults = Faults::none();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            faults
                .0
                .insert(Fault::parse(name).ok_or_else(|| UnknownFault(name.to_owned()))?);
        }
        Ok(faults)
    }

    /// With `fault` too.
    pub fn with(mut self, fault: Fault) -> Faults {
        self.0.insert(fault);
        self
    }

    /// Whether `fault` is injected.
    pub fn has(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }

    /// Whether any fault is injected.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Sets the engine's part of the faults in `config`.
    pub fn configure(&self, config: &mut Config) {
        config.advertise_before_durable = self.has(Fault::AdvertiseBeforeDurable);
        config.report_before_durable = self.has(Fault::ReportBeforeDurable);
    }

    /// When a local revocation may be answered.
    pub fn ack(&self) -> Ack {
        if self.has(Fault::AckBeforeDurable) {
            Ack::BeforeDurable
        } else {
            Ack::AfterDurable
        }
    }
}

/// When a local revocation is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Once [`store_local`](crate::store_local) returned `Ok`: the rule.
    AfterDurable,
    /// As soon as it is numbered (the `ack-before-durable` fault).
    BeforeDurable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_a_list_and_refuse_unknown_names() {
        assert_eq!(Faults::parse("").unwrap(), Faults::none());
        let both = Faults::parse("ack-before-durable, advertise-before-durable").unwrap();
        assert!(both.has(Fault::AckBeforeDurable) && both.has(Fault::AdvertiseBeforeDurable));
        assert_eq!(both.ack(), Ack::BeforeDurable);
        assert_eq!(Faults::none().ack(), Ack::AfterDurable);
        let mut config = Config::new(veto_core::NodeId::new(1), "a", "r");
        both.configure(&mut config);
        assert!(config.advertise_before_durable);
        Faults::none().configure(&mut config);
        assert!(!config.advertise_before_durable);
        let err = Faults::parse("ack-before-durable,typo").unwrap_err();
        assert!(err.to_string().contains("\"typo\""));
        for fault in Fault::ALL {
            assert_eq!(Fault::parse(fault.name()), Some(fault));
        }
    }
}
