//! What a peer said in its last frontier about who sends it what (see
//! `sources.rs`, which acts on it).

use std::collections::BTreeSet;

use veto_core::{Frontier, NodeId};

use crate::proto::OriginRanges;

/// What a peer said in its last frontier about where its records come from.
#[derive(Default)]
pub(crate) struct Hints {
    /// Origins it does not get by push.
    pub(crate) indirect: BTreeSet<NodeId>,
    /// Seqs it expects from others.
    pub(crate) expected: Frontier,
    /// Its frontier was the first on the connection, sent before it had
    /// heard ours: it could not yet say who sends it what.
    pub(crate) blind: bool,
}

impl Hints {
    pub(crate) fn of(indirect: &[NodeId], expected: &OriginRanges, blind: bool) -> Hints {
        let mut set = Frontier::new();
        for (origin, ranges) in expected {
            for r in ranges {
                set.insert_range(*origin, r.clone());
            }
        }
        Hints {
            indirect: indirect.iter().copied().collect(),
            expected: set,
            blind,
        }
    }
}
