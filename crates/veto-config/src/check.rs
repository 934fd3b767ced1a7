//! Reading a file's text: TOML, then each key, then the values no flag could
//! make right.

use serde::Deserialize as _;

use crate::file::ConfigFile;

/// Why a config file is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not TOML at all.
    #[error("not TOML: {0}")]
    NotToml(String),
    /// A key is unknown, or its value has the wrong type or shape.
    #[error("`{key}`: {message}")]
    Key {
        /// The key, as TOML reads it: a quoted key with its escapes
        /// resolved.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A count or duration that must be positive is 0.
    #[error("`{0}` must be positive, not 0")]
    Zero(&'static str),
    /// `max_staleness` is not a positive, finite number of seconds.
    #[error("`max_staleness` must be a positive number of seconds, not {0}")]
    Staleness(f64),
    /// Two `[[transmitters]]` share an issuer.
    #[error("transmitter {0} is configured twice")]
    DuplicateTransmitter(String),
}

/// Reads a config file's text, refusing it at its first problem.
pub fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    check(text).map_err(|mut errors| errors.swap_remove(0))
}

/// Reads a config file's text and reports every problem it has: each key on
/// its own first (an unknown key, a value of the wrong type), then, if every
/// key is right, the values that are wrong whatever the flags say. The error
/// list is never empty.
pub fn check(text: &str) -> Result<ConfigFile, Vec<ConfigError>> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| vec![ConfigError::NotToml(e.message().to_owned())])?;
    let mut errors = Vec::new();
    for (key, value) in &table {
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        if let Err(e) = ConfigFile::deserialize(toml::Value::Table(one)) {
            errors.push(ConfigError::Key {
                key: key.clone(),
                message: e.message().to_owned(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let file = match ConfigFile::deserialize(toml::Value::Table(table)) {
        Ok(file) => file,
        // Every key read on its own, so this is a key that reads differently
        // beside others; report it without a key rather than not at all.
        Err(e) => {
            return Err(vec![ConfigError::Key {
                key: String::new(),
                message: e.message().to_owned(),
            }])
        }
    };
    errors.extend(values(&file));
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// The values a file may not hold, whatever the flags and environment say.
fn values(file: &ConfigFile) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (key, value) in [
        ("max_token_lifetime", file.max_token_lifetime),
        ("checkpoint_interval", file.checkpoint_interval),
        ("watch_buffer", file.watch_buffer),
        ("max_watchers", file.max_watchers),
        ("max_snapshots", file.max_snapshots),
        ("header_timeout", file.header_timeout),
        ("body_timeout", file.body_timeout),
        ("idle_timeout", file.idle_timeout),
        ("write_timeout", file.write_timeout),
        ("max_connections", file.max_connections),
        ("write_burst", file.write_burst),
        ("lookup_burst", file.lookup_burst),
    ] {
        if value == Some(0) {
            errors.push(ConfigError::Zero(key));
        }
    }
    if let Some(max) = file.max_staleness {
        if !(max.is_finite() && max > 0.0) {
            errors.push(ConfigError::Staleness(max));
        }
    }
    for (i, t) in file.transmitters.iter().enumerate() {
        if file.transmitters[..i].iter().any(|o| o.issuer == t.issuer) {
            errors.push(ConfigError::DuplicateTransmitter(t.issuer.clone()));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Jwks, LogFormat, StalePolicy};

    #[test]
    fn an_empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), ConfigFile::default());
    }

    #[test]
    fn every_kind_of_key_reads() {
        let file = parse(
            r#"
            data_dir = "/var/lib/veto"
            listen = "127.0.0.1:7400"
            peers = ["us=10.0.0.2:7401"]
            log_format = "json"
            max_staleness = 2.5
            stale_policy = "open"
            write_rate = 0

            [[transmitters]]
            issuer = "https://idp.example"
            audience = "veto"
            jwks = '{"keys": []}'

            [[transmitters]]
            issuer = "https://other.example"
            audience = "veto"
            jwks = { keys = [] }

            [[transmitters]]
            issuer = "https://third.example"
            audience = "veto"
            jwks_file = "third.jwks"
            "#,
        )
        .unwrap();
        assert_eq!(file.listen, Some(([127, 0, 0, 1], 7400).into()));
        assert_eq!(file.log_format, Some(LogFormat::Json));
        assert_eq!(file.stale_policy, Some(StalePolicy::Open));
        assert_eq!(file.write_rate, Some(0));
        let jwks: Vec<&Jwks> = file.transmitters.iter().map(|t| &t.jwks).collect();
        assert!(matches!(
            jwks[..],
            [Jwks::Json(_), Jwks::Table(_), Jwks::File(_)]
        ));
        // What is written back reads back the same.
        let again = parse(&toml::to_string(&file).unwrap()).unwrap();
        assert_eq!(again, file);
    }

    #[test]
    fn each_bad_key_is_named_once() {
        let errors = check("gc_grace = \"1h\"\ncolour = 1\nlisten = \"nowhere\"\n").unwrap_err();
        let keys: Vec<&str> = errors
            .iter()
            .map(|e| match e {
                ConfigError::Key { key, .. } => key.as_str(),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(keys, ["colour", "gc_grace", "listen"]);
        assert!(
            errors[0].to_string().contains("unknown field"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn values_no_flag_could_mend_are_refused() {
        for (text, says) in [
            ("watch_buffer = 0", "`watch_buffer` must be positive"),
            ("header_timeout = 0", "`header_timeout` must be positive"),
            (
                "max_token_lifetime = 0",
                "`max_token_lifetime` must be positive",
            ),
            (
                "max_staleness = 0",
                "`max_staleness` must be a positive number",
            ),
            (
                "max_staleness = -2.5",
                "`max_staleness` must be a positive number",
            ),
            (
                "max_staleness = nan",
                "`max_staleness` must be a positive number",
            ),
            (
                "max_staleness = inf",
                "`max_staleness` must be a positive number",
            ),
            ("x = ", "not TOML"),
            ("peers = \"a:1\"", "`peers`: invalid type"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        // Both zeros are reported, not just the first.
        assert_eq!(
            check("watch_buffer = 0\nmax_watchers = 0")
                .unwrap_err()
                .len(),
            2
        );
    }

    #[test]
    fn a_transmitter_needs_exactly_one_jwks_that_is_json() {
        let head = "[[transmitters]]\nissuer = \"i\"\naudience = \"a\"\n";
        for (body, says) in [
            ("", "give exactly one of `jwks_file` and `jwks`"),
            ("jwks_file = \"f\"\njwks = '{}'\n", "give exactly one"),
            ("jwks = '{not json'\n", "`jwks` is not JSON"),
            ("jwks = 3\n", "`jwks` must be a table or JSON text"),
            ("jwks_url = \"https://x\"\n", "unknown field `jwks_url`"),
        ] {
            let e = parse(&format!("{head}{body}")).unwrap_err().to_string();
            assert!(e.starts_with("`transmitters`: "), "{body}: {e}");
            assert!(e.contains(says), "{body}: {e}");
        }
        let twice = format!("{head}jwks = '{{}}'\n{head}jwks_file = \"f\"\n");
        assert_eq!(
            parse(&twice).unwrap_err(),
            ConfigError::DuplicateTransmitter("i".into())
        );
    }
}
