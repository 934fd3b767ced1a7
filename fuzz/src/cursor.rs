//! Invariants of the watch cursor (`veto_api::Cursor`, `<16 hex>-<n>`), as
//! `GET /v1/watch` reads it from `Last-Event-ID` or `?cursor=`.

use veto_api::Cursor;

/// Parses `text` as a cursor. What parses prints as `<16 hex>-<decimal>` and
/// parses back to the same cursor; what does not parse is refused with an
/// error that quotes at most 64 characters of it.
pub fn check_cursor_text(text: &str) {
    match text.parse::<Cursor>() {
        Ok(c) => {
            let printed = c.to_string();
            assert_eq!(
                printed.parse::<Cursor>(),
                Ok(c),
                "{text:?} printed as {printed}"
            );
            let (epoch, n) = printed.split_once('-').unwrap_or_default();
            assert_eq!(epoch.len(), 16);
            assert_eq!(n, c.n.to_string());
            // Up to hex case, a cursor without signs or leading zeros in `n`
            // is its own spelling.
            let plain = text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
            if plain
                && !n.starts_with('0')
                && !text.rsplit('-').next().unwrap_or("").starts_with('0')
            {
                assert!(
                    printed.eq_ignore_ascii_case(text),
                    "{text:?} printed as {printed}"
                );
            }
        }
        Err(e) => assert!(e.0.chars().count() <= 64 && text.starts_with(&e.0)),
    }
}

/// Every cursor prints to text that parses back to it.
pub fn check_cursor_value(epoch: u64, n: u64) {
    let c = Cursor { epoch, n };
    assert_eq!(c.to_string().parse::<Cursor>(), Ok(c));
}
