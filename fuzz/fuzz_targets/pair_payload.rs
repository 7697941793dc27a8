#![no_main]
//! Fuzz target `pair_payload`: see `kolo::fuzz_targets::pair_payload`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::pair_payload(data));
