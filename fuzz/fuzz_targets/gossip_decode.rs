//! `veto_gossip::proto::decode` on arbitrary bytes, as one frame payload from a
//! peer: never panics, and what decodes re-encodes to the same message. Run:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run gossip_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    veto_fuzz::gossip::check_payload(data);
});
