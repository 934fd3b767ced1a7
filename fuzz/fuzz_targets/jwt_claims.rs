//! `veto_core::jwt::decode` on tokens whose header and claims are arbitrary
//! bytes, base64url-encoded here, so that the fuzzer reaches JSON and claim
//! decoding. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run jwt_claims`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    veto_fuzz::check_jwt(&veto_fuzz::jwt_from_parts(data));
});
