//! Arbitrary bytes as a connection's stream of length-prefixed frames
//! (`parse_frame_header`, then `decode` of each payload): never panics, an
//! oversized header is refused before its body, and the frames read write back
//! as the same messages. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run gossip_frames`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    veto_fuzz::gossip::check_stream(data);
});
