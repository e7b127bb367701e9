//! Starting the memory daemon on first use, and stopping it.
//!
//! Starting takes an exclusive `flock` on `memory.lock`, looks again for a
//! daemon (another caller may have just started one), makes sure a daemon
//! still alive there (of another protocol version, or on its way out) is
//! gone (SIGTERM by its pid file), spawns `cachier daemon serve` detached
//! and waits up to [`START_TIMEOUT`] for it to say it is ready. So any
//! number of simultaneous first uses make exactly one daemon, and a socket
//! left by a crashed daemon is replaced.
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::client::{Attempt, Conn, attempt, open};
use super::paths;
use crate::store::kit::Deadline;

/// How long a started daemon has to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start a daemon when none runs.
#[derive(Clone)]
pub struct Start {
    pub dir: PathBuf,
    pub max_memory: u64,
    pub idle_timeout: Duration,
}

/// The fast way in for a store: connect and send hello, the answer read
/// with the first reply. If the daemon then refuses us, `retry` is set and
/// the caller goes through [`connect`].
pub fn connect_fast(start: &Start, notice: &dyn Fn(&str)) -> Result<Conn> {
    // The directory is checked when a daemon is started; a daemon found
    // here must run as us (checked in `open`).
    match open(&start.dir) {
        Ok(Some(conn)) => Ok(conn),
        _ => connect(start, notice),
    }
}

/// A connection to the running daemon, or `None` when none runs. A daemon
/// of another version is an error.
pub fn running(dir: &Path) -> Result<Option<Conn>> {
    match attempt(dir)? {
        Attempt::Ready(conn) => Ok(Some(conn)),
        Attempt::Absent => Ok(None),
        Attempt::Mismatch(why) => bail!("{why}; `cachier daemon stop` stops it"),
    }
}

/// A connection to the daemon, started first if none runs (or replaced, if
/// it speaks another version; `notice` hears why).
pub fn connect(start: &Start, notice: &dyn Fn(&str)) -> Result<Conn> {
    paths::ensure(&start.dir)?;
    if let Attempt::Ready(conn) = attempt(&start.dir)? {
        return Ok(conn);
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths::lock_file(&start.dir))
        .context("cannot open the memory daemon's start lock")?;
    lock.lock()
        .context("cannot take the memory daemon's start lock")?;
    match attempt(&start.dir)? {
        Attempt::Ready(conn) => return Ok(conn),
        Attempt::Absent => {}
        Attempt::Mismatch(why) => notice(&format!("{why}; restarting the daemon")),
    }
    // A daemon still alive here speaks another version or is on its way
    // out: it must be gone (and its socket with it) before a new one binds.
    terminate(&start.dir)?;
    spawn(start)?;
    match attempt(&start.dir)? {
        Attempt::Ready(conn) => Ok(conn),
        Attempt::Absent => bail!("the memory daemon started but does not answer"),
        Attempt::Mismatch(why) => bail!("{why}"),
    }
}

/// Start a daemon and wait until it says it listens.
fn spawn(start: &Start) -> Result<()> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let idle = format!("{}ms", start.idle_timeout.as_millis());
    crate::background::spawn_daemon(
        &["daemon", "serve", "--idle-timeout", &idle],
        File::from(write),
        &[("CACHIER_MAX_MEMORY", start.max_memory.to_string())],
    )?;
    let mut read = File::from(read);
    let deadline = Deadline::after(Some(START_TIMEOUT));
    let mut said = Vec::new();
    loop {
        let left = deadline.left(START_TIMEOUT);
        if left.is_zero() {
            bail!(
                "the memory daemon did not come up within {}s",
                START_TIMEOUT.as_secs()
            );
        }
        let timeout = Timespec::try_from(left).unwrap_or_default();
        let mut fds = [PollFd::new(&read, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        let mut buf = [0u8; 64];
        match read.read(&mut buf) {
            Ok(0) => {
                bail!("the memory daemon exited at start (try `cachier daemon serve` to see why)")
            }
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        if said.contains(&b'\n') {
            return Ok(());
        }
    }
}

/// Stop the daemon of `dir` by its pid file (whatever its version) and wait
/// for it to go; its pid, or `None` if none ran.
pub fn terminate(dir: &Path) -> Result<Option<u32>> {
    let Some(pid) = paths::read_pid(dir) else {
        return Ok(None);
    };
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return Ok(None);
    };
    // A stale pid file may name a process that is no daemon of ours now.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if !alive(pid) || !words.contains(&&b"daemon"[..]) || !words.contains(&&b"serve"[..]) {
        return Ok(None);
    }
    if rustix::process::kill_process(p, rustix::process::Signal::TERM).is_err() {
        return Ok(None);
    }
    await_exit(pid, START_TIMEOUT)?;
    Ok(Some(pid))
}

/// Wait (bounded) until process `pid` is gone (or a zombie).
pub fn await_exit(pid: u32, limit: Duration) -> Result<()> {
    let deadline = Deadline::after(Some(limit));
    while alive(pid) {
        if deadline.passed() {
            bail!("the memory daemon (pid {pid}) does not exit");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}
