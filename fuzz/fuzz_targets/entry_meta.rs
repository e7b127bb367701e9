//! Fuzz target: a stored entry: 32 bytes of lookup key, then the stored bytes.
#![no_main]

#[path = "../common/cbor_ints.rs"]
mod cbor_ints;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cachier::fuzzing::entry_meta(data));

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max: usize, seed: u32| {
    cbor_ints::mutate(data, size, max, seed, cbor_ints::Frame::EntryFile)
});
