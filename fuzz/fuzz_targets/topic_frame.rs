#![no_main]
//! Fuzz target `topic_frame`: see `kolo::fuzz_targets::topic_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| kolo::fuzz_targets::topic_frame(data));
