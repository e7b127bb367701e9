//! Fuzz target: a stored entry: 32 bytes of lookup key, then the stored bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cachier::fuzzing::entry_meta(data));
