#![no_main]
//! Fuzz target `invite_code`: see `kolo::fuzz_targets::invite_code`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::invite_code(data));
