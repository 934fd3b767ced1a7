//! `veto_api::Cursor` parsing on arbitrary text, and printing on arbitrary
//! values: what parses prints back to the same cursor. Run:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run watch_cursor`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        veto_fuzz::cursor::check_cursor_text(text);
    }
    if let Some((epoch, rest)) = data.split_first_chunk::<8>() {
        if let Some((n, _)) = rest.split_first_chunk::<8>() {
            veto_fuzz::cursor::check_cursor_value(
                u64::from_le_bytes(*epoch),
                u64::from_le_bytes(*n),
            );
        }
    }
});
