//! Fuzz target: an export stream, as `cachier import` reads it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cachier::fuzzing::dump_stream(data));
