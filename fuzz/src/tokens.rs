//! Invariants of the tokens file (`veto serve --tokens-file`), which the
//! node reads at start and on every SIGHUP: whatever it accepts is usable,
//! and what it refuses is refused with a reason, never a panic.

use veto_api::tokens::{check_name, parse_tokens_file, tokens_file_entry};
use veto_api::{Role, TokenTable};

/// Parses `text` as a tokens file. Every entry it accepts has a valid name,
/// at least one role and reads back the same when written again; a table of
/// the entries either builds or names the duplicate.
pub fn check_tokens_file(text: &str) {
    let Ok(entries) = parse_tokens_file(text) else {
        return;
    };
    for e in &entries {
        assert!(check_name(&e.name).is_ok(), "accepted name {:?}", e.name);
        assert!(e.roles.iter().next().is_some(), "{:?} has no role", e.name);
        assert!(Role::ALL.iter().any(|r| e.roles.grants(*r)));
        // What `veto token add` would write for it names the same roles.
        let again = parse_tokens_file(&tokens_file_entry(&e.name, e.roles, "t")).unwrap();
        assert_eq!((&again[0].name, again[0].roles), (&e.name, e.roles));
    }
    match TokenTable::new(None, entries.clone()) {
        Ok(table) => assert_eq!(table.len(), entries.len()),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
