//! Fuzz target: a config file, and values as `cachier config set` checks them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cachier::fuzzing::config_file(data));
