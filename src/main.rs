//! Entry point: everything lives in the library so tests and tools share it.
//! A C `main` (`no_main`), so a hit does not pay for std's start-up: see
//! `cachier::startup` for what it skips and what it keeps.
#![no_main]

use std::ffi::{c_char, c_int};

#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // SAFETY: the C runtime passes `argc` NUL-terminated strings in `argv`.
    unsafe { cachier::startup::main(argc, argv) }
}
