//! Fuzz target: a stream of memory daemon frames, as requests and as responses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cachier::fuzzing::daemon_frames(data));
