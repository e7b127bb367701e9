//! Fuzz target: a stream of memory daemon frames, as requests and as responses.
#![no_main]

#[path = "../common/cbor_ints.rs"]
mod cbor_ints;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cachier::fuzzing::daemon_frames(data));

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max: usize, seed: u32| {
    cbor_ints::mutate(data, size, max, seed, cbor_ints::Frame::U32Be)
});
