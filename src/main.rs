//! Entry point: everything lives in the library so tests and tools share it.
//! A C `main` (`no_main`), so a hit does not pay for std's start-up: see
//! `cachier::startup` for what it skips and what it keeps. (The unit-test
//! build of this file keeps the harness's own `main`.)
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    // SAFETY: the C runtime passes `argc` NUL-terminated strings in `argv`.
    unsafe { cachier::startup::main(argc, argv) }
}
