#![no_main]
//! Fuzz target `group_plaintext`: see `kolo::fuzz_targets::group_plaintext`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::group_plaintext(data));
