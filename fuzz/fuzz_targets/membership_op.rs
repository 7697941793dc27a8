#![no_main]
//! Fuzz target `membership_op`: see `kolo::fuzz_targets::membership_op`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::membership_op(data));
