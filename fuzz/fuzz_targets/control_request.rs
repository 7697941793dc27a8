#![no_main]
//! Fuzz target `control_request`: see `kolo::fuzz_targets::control_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::control_request(data));
