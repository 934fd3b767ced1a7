//! Who made a record: the name of the credential that authenticated the
//! write and, when the client said more, its own words.
//!
//! A record keeps both in its one `actor` text, as `name`, or as `name`, the
//! separator [`ON_BEHALF_SEPARATOR`] (U+001F, the ASCII unit separator) and
//! the client's text. One field keeps the record's encoding, its digest and
//! the wire protocol as they were, and records written before names were
//! authenticated read back as a name alone. Authenticated names never hold
//! the separator (see the API's token names), so the first one splits the
//! two parts unambiguously.

/// Separates the authenticated name from the client's text in `actor`.
pub const ON_BEHALF_SEPARATOR: char = '\u{1f}';

/// The `actor` text of a record made by `name`, for `on_behalf_of` if the
/// client named someone other than `name`.
pub fn compose(name: &str, on_behalf_of: Option<&str>) -> String {
    match on_behalf_of {
        Some(text) if !text.is_empty() && text != name => {
            format!("{name}{ON_BEHALF_SEPARATOR}{text}")
        }
        _ => name.to_owned(),
    }
}

/// The authenticated name and the client's text of a record's `actor`.
pub fn split(actor: &str) -> (&str, Option<&str>) {
    match actor.split_once(ON_BEHALF_SEPARATOR) {
        Some((name, text)) => (name, Some(text)),
        None => (actor, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_parts_read_back() {
        assert_eq!(
            split(&compose("soc-bot", Some("alice"))),
            ("soc-bot", Some("alice"))
        );
        assert_eq!(split(&compose("soc-bot", None)), ("soc-bot", None));
        assert_eq!(compose("soc-bot", Some("soc-bot")), "soc-bot");
        assert_eq!(compose("soc-bot", Some("")), "soc-bot");
        // The client's text may hold the separator itself: only the first splits.
        let odd = format!("a{ON_BEHALF_SEPARATOR}b");
        assert_eq!(split(&compose("n", Some(&odd))), ("n", Some(odd.as_str())));
        assert_eq!(split("legacy text"), ("legacy text", None));
    }
}
