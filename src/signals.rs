//! Passing INT, TERM, HUP and QUIT on to the running command.
//!
//! A terminal sends these to the whole foreground group, the command
//! included, so only a signal sent to cachier alone (by `kill`) is forwarded;
//! either way cachier keeps waiting for the command and remembers that the
//! run was interrupted, so its result is not stored.
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::Cause;

pub struct Forwarder {
    handle: signal_hook::iterator::Handle,
    thread: JoinHandle<Option<i32>>,
}

impl Forwarder {
    /// Start forwarding to process `child`.
    pub fn start(child: u32) -> std::io::Result<Forwarder> {
        let mut signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
        let handle = signals.handle();
        let pid = i32::try_from(child)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        let thread = std::thread::spawn(move || {
            let mut last = None;
            for origin in signals.forever() {
                last = Some(origin.signal);
                if matches!(origin.cause, Cause::Sent(_))
                    && let (Some(pid), Some(sig)) =
                        (pid, rustix::process::Signal::from_named_raw(origin.signal))
                {
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
            last
        });
        Ok(Forwarder { handle, thread })
    }

    /// Stop forwarding; the last signal received, if any.
    pub fn stop(self) -> Option<i32> {
        self.handle.close();
        self.thread.join().ok().flatten()
    }
}
