//! The tokens file (`--tokens-file`, TOML) on arbitrary text: no panic, and
//! what is accepted is usable. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run tokens_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        veto_fuzz::tokens::check_tokens_file(text);
    }
});
