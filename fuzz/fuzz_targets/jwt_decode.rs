//! `veto_core::jwt::decode` on arbitrary text: never panics, and what it decodes
//! is consistent. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run jwt_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        veto_fuzz::check_jwt(token);
    }
});
