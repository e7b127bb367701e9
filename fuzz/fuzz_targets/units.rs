//! Fuzz target: a duration or size as typed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cachier::fuzzing::units(data));
