#![no_main]
//! See `ccbt_fuzz_entry` for what this target feeds and checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (ccbt_fuzz_entry::target("lsd").expect("a listed target"))(data)
});
