//! The `veto serve --config` TOML file on arbitrary text: no panic, `parse`
//! and `check` agree, and what is accepted writes back to the same settings.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run config_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        veto_fuzz::config::check_config(text);
    }
});
