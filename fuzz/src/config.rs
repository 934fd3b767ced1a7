//! Invariants of the `veto serve --config` file (`veto_config`), read at
//! start and by `veto config check`: whatever it accepts holds no value the
//! node would refuse later and writes back to the same settings; whatever it
//! refuses is refused with a reason, never a panic.

use veto_config::{check, parse, ConfigError};

/// Reads `text` as a config file and checks the answer is consistent.
pub fn check_config(text: &str) {
    let whole = parse(text);
    let all = check(text);
    // `parse` is `check` stopped at its first error.
    match (&whole, &all) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(first), Err(errors)) => {
            assert!(!errors.is_empty());
            assert_eq!(first, &errors[0]);
            for e in errors {
                assert!(!e.to_string().is_empty());
                if let ConfigError::Key { key, .. } = e {
                    // A key error names a key the text really holds, as
                    // TOML reads it (a quoted key's escapes resolved).
                    let keys: Option<toml::Table> = toml::from_str(text).ok();
                    assert!(
                        key.is_empty() || keys.is_some_and(|t| t.contains_key(key)),
                        "{key:?}"
                    );
                }
            }
        }
        _ => panic!("parse and check disagree: {whole:?} against {all:?}"),
    }
    let Ok(file) = whole else {
        return;
    };
    for value in [
        file.watch_buffer,
        file.max_watchers,
        file.max_snapshots,
        file.header_timeout,
        file.max_connections,
        file.max_token_lifetime,
    ] {
        assert_ne!(value, Some(0));
    }
    if let Some(max) = file.max_staleness {
        assert!(max.is_finite() && max > 0.0);
    }
    // What is accepted can be written out and reads back as the same settings.
    let written = toml::to_string(&file).expect("an accepted file serialises");
    let again = parse(&written).unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(again, file, "{written}");
}
