#![no_main]
//! Fuzz target `store_header`: see `kolo::fuzz_targets::store_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::store_header(data));
