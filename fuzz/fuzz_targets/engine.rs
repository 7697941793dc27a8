#![no_main]
//! Fuzz target `engine`: see `kolo::fuzz_targets::engine`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::engine(data));
