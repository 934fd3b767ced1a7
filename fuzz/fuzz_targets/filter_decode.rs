//! The edge filter's binary format (`GET /v1/filter`): decoding never
//! panics, and what decodes re-encodes to the same bytes. Run:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run filter_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    veto_fuzz::check_filter_decode(data);
});
