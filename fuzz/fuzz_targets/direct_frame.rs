#![no_main]
//! Fuzz target `direct_frame`: see `kolo::fuzz_targets::direct_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::direct_frame(data));
