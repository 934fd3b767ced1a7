//! `NodeId` and `RecordId` text forms: what parses is canonical and prints back
//! to the same id, and every id survives printing and parsing. Run:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run id_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        veto_fuzz::check_id_text(text);
    }
    if let Some((origin, seq)) = data.split_first_chunk::<8>().and_then(|(o, rest)| {
        let (s, _) = rest.split_first_chunk::<8>()?;
        Some((u64::from_le_bytes(*o), u64::from_le_bytes(*s)))
    }) {
        veto_fuzz::check_id_value(origin, seq);
    }
});
