//! `POST /v1/events` with arbitrary Security Event Tokens, signed by the
//! configured transmitter or not: never panics, never a server error, and a
//! refused SET stores nothing. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run set_events`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    veto_fuzz::set::check_set_input(data);
});
