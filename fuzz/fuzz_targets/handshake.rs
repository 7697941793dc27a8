#![no_main]
//! Fuzz target `handshake`: see `kolo::fuzz_targets::handshake`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::handshake(data));
