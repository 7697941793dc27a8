#![no_main]
//! Fuzz target `membership_log`: see `kolo::fuzz_targets::membership_log`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::membership_log(data));
