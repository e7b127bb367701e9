//! Process start-up and exit for the C `main` in `main.rs`, which skips
//! std's own: that start-up reads `/proc/self/maps` to find the main
//! thread's stack guard and installs a SIGSEGV handler on an alternate
//! stack, about a quarter of a small hit. What of it matters here is done
//! below: file descriptors 0–2 are open (else `/dev/null`, so no file we
//! open becomes stdout), SIGPIPE is ignored (a closed reader is an `EPIPE`
//! error; std's `Command` still gives children the default), and stdout is
//! flushed at the end. A stack overflow is then a plain SIGSEGV.
use std::ffi::{CStr, OsString, c_char, c_int};
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::sync::OnceLock;

static ARGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// This process's arguments, the program's name first.
pub(crate) fn args() -> Vec<OsString> {
    ARGS.get()
        .cloned()
        .unwrap_or_else(|| std::env::args_os().collect())
}

/// Run cachier on the C `main`'s arguments; the process's exit status.
///
/// # Safety
/// `argv` must hold `argc` pointers to NUL-terminated strings (or nulls),
/// as the C runtime passes them to `main`.
pub unsafe fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    standard_fds();
    // SAFETY: setting a disposition to SIG_IGN runs no code of ours.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let count = if argv.is_null() {
        0
    } else {
        usize::try_from(argc).unwrap_or(0)
    };
    let args: Vec<OsString> = (0..count)
        .filter_map(|i| {
            // SAFETY: the caller promises `argc` entries in `argv`.
            let arg = unsafe { *argv.add(i) };
            // SAFETY: a non-null entry is a NUL-terminated string.
            (!arg.is_null()).then(|| unsafe { CStr::from_ptr(arg) })
        })
        .map(|arg| OsString::from_vec(arg.to_bytes().to_vec()))
        .collect();
    // std fills `std::env::args` without its start-up only on glibc and
    // macOS: the background refresh re-runs these, so keep them here.
    let code = crate::exit_code(ARGS.get_or_init(|| args));
    let _ = std::io::stdout().flush();
    c_int::from(code)
}

/// Open `/dev/null` on each of fds 0–2 that is closed, as std does.
fn standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd; a zero timeout.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for fd in fds {
        if fd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a constant path; the lowest free fd is the closed one.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
