//! One-line messages on stderr; cache warnings are printed at most once a run.
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static WARNED: AtomicBool = AtomicBool::new(false);

/// Print `cachier: warning: {message}` unless a warning was already printed.
pub fn once(message: &str) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        line(&format!("warning: {message}"));
    }
}

/// Print `cachier: {message}` on stderr, ignoring a closed stderr.
pub fn line(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "cachier: {message}");
}
