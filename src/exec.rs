//! Running the command: live, ordered capture of stdout and stderr on a miss,
//! and plain pass-through when caching is off.
//!
//! One thread polls both pipes; each piece is written at once to our own
//! fd 1 or 2, hashed, and handed to the store's spool, and the arrival order
//! is kept as runs. Memory stays at one 64 KiB buffer whatever the output size.
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use rustix::event::{PollFd, PollFlags};

use crate::entry::{Run, Stream};
use crate::error::{Exit, NOT_EXECUTABLE, NOT_FOUND};
use crate::held::Held;
use crate::signals::Forwarder;
use crate::store::Spool;
use crate::warn;

const BUF: usize = 64 * 1024;

/// Why a finished run's output was not (or cannot be) stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unstorable {
    OutputClosed,
    Interrupted(i32),
    TooLarge(u64),
    /// Writing the entry failed; what failed, for the warning or error.
    SpoolFailed(String),
}

pub struct Outcome {
    pub status: ExitStatus,
    pub runs: Vec<Run>,
    pub lens: [u64; 2],
    pub hashes: [[u8; 32]; 2],
    pub duration: Duration,
    /// The spool, still holding the whole output, unless `unstorable`.
    pub spool: Option<Box<dyn Spool>>,
    pub unstorable: Option<Unstorable>,
    /// The output, when it was held back rather than streamed.
    pub held: Option<Held>,
}

/// Exit code cachier reports for a finished command: its code, or 128+N.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        (None, None) => 1,
    }
}

fn spawn(argv: &[OsString], stdin: Stdio, capture: bool) -> Result<Child> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Exit::usage("no command given; write it after `--`"));
    };
    let mut cmd = Command::new(program);
    // The wrapped command never sees the key that signs its results.
    cmd.args(args)
        .stdin(stdin)
        .env_remove(crate::sign::SIGNING_VAR);
    if capture {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    cmd.spawn().map_err(|e| {
        let name = program.to_string_lossy();
        let (code, what) = match e.kind() {
            io::ErrorKind::NotFound => (
                NOT_FOUND,
                format!("command not found: {name} (check its name and PATH)"),
            ),
            io::ErrorKind::PermissionDenied => (
                NOT_EXECUTABLE,
                format!("cannot execute {name}: permission denied (is it executable?)"),
            ),
            _ => (NOT_EXECUTABLE, format!("cannot execute {name}: {e}")),
        };
        Exit {
            code,
            message: what,
        }
        .into()
    })
}

/// Run with the terminal's streams untouched: caching is off.
pub fn passthrough(argv: &[OsString]) -> Result<u8> {
    let mut child = spawn(argv, Stdio::inherit(), false)?;
    let forwarder = Forwarder::start(child.id())?;
    let status = child.wait();
    forwarder.stop();
    Ok(exit_code(status?))
}

/// Our own stdout or stderr as an unbuffered file, `None` if it is closed.
pub fn own_stream(stream: Stream) -> Option<File> {
    let fd = match stream {
        Stream::Stdout => io::stdout().as_fd().try_clone_to_owned(),
        Stream::Stderr => io::stderr().as_fd().try_clone_to_owned(),
    };
    fd.ok().map(File::from)
}

/// Run and capture. `limit` caps the stored size; past it the spool is dropped.
/// A failed cache write is warned about the moment it happens, unless
/// `strict`: then the caller turns it into an error once the command is done.
/// With `hold`, the output goes to [`Held`] instead of our stdout and stderr.
pub fn capture(
    argv: &[OsString],
    stdin: Option<File>,
    mut spool: Option<Box<dyn Spool>>,
    limit: Option<u64>,
    strict: bool,
    hold: bool,
) -> Result<Outcome> {
    // A file-size limit must fail our cache writes (EFBIG), not kill us and
    // the command's output with SIGXFSZ. Caught, not ignored: the command
    // gets the default disposition back at exec.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let started = Instant::now();
    let mut child = spawn(argv, stdin.map_or_else(Stdio::inherit, Stdio::from), true)?;
    let forwarder = Forwarder::start(child.id())?;
    let mut pipes: [Option<OwnedFd>; 2] = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    let mut held = match hold {
        true => Some(
            Held::new().map_err(|e| Exit::failed(format!("cannot hold the output back: {e}")))?,
        ),
        false => None,
    };
    let mut sinks = match held {
        Some(_) => [None, None],
        None => [own_stream(Stream::Stdout), own_stream(Stream::Stderr)],
    };
    let mut hashers = [blake3::Hasher::new(), blake3::Hasher::new()];
    let mut lens = [0u64; 2];
    let mut runs: Vec<Run> = Vec::new();
    let mut unstorable = None;
    let mut buf = vec![0u8; BUF];
    while pipes.iter().any(Option::is_some) {
        let ready = poll(&pipes)?;
        for i in 0..2 {
            if !ready[i] {
                continue;
            }
            let Some(pipe) = &pipes[i] else { continue };
            let n = match rustix::io::read(pipe, &mut buf) {
                Err(rustix::io::Errno::INTR) => continue,
                Ok(0) | Err(_) => {
                    pipes[i] = None;
                    continue;
                }
                Ok(n) => n,
            };
            let data = &buf[..n];
            let stream = if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            if let Some(sink) = &mut sinks[i]
                && sink.write_all(data).is_err()
            {
                // Like a plain pipe: the command gets SIGPIPE on its next write.
                sinks[i] = None;
                pipes[i] = None;
                unstorable.get_or_insert(Unstorable::OutputClosed);
                spool = None;
            }
            if let Some(h) = &mut held
                && let Err(e) = h.write(data)
            {
                // Nothing may be lost: what was held goes out, the rest streams.
                warn::once(&format!("cannot hold the output back ({e}); streaming it"));
                let _ = held.take().map(|h| h.release(&runs));
                sinks = [own_stream(Stream::Stdout), own_stream(Stream::Stderr)];
                if let Some(sink) = &mut sinks[i] {
                    let _ = sink.write_all(data);
                }
            }
            hashers[i].update(data);
            lens[i] += n as u64;
            match runs.last_mut() {
                Some(run) if run.stream == stream => run.len += n as u64,
                _ => runs.push(Run {
                    stream,
                    len: n as u64,
                }),
            }
            if let Some(s) = &mut spool
                && let Err(e) = s.write(stream, data)
            {
                let what = format!("cannot write the cache entry ({e})");
                if !strict {
                    warn::once(&format!(
                        "{what}; this result is not stored (free space, or pick another cache with --cache-dir)"
                    ));
                }
                spool = None;
                unstorable.get_or_insert(Unstorable::SpoolFailed(what));
            }
            let total = lens[0] + lens[1];
            if limit.is_some_and(|l| total > l) && spool.is_some() {
                spool = None;
                unstorable.get_or_insert(Unstorable::TooLarge(total));
            }
        }
    }
    let status = child.wait()?;
    if let Some(sig) = forwarder.stop() {
        unstorable = Some(Unstorable::Interrupted(sig));
    } else if let Some(sig) = status.signal() {
        unstorable = Some(Unstorable::Interrupted(sig));
    }
    if unstorable.is_some() {
        spool = None;
    }
    Ok(Outcome {
        status,
        runs,
        lens,
        hashes: hashers.map(|h| *h.finalize().as_bytes()),
        duration: started.elapsed(),
        spool,
        unstorable,
        held,
    })
}

/// Which pipes have data or have closed.
fn poll(pipes: &[Option<OwnedFd>; 2]) -> io::Result<[bool; 2]> {
    let flags = PollFlags::IN | PollFlags::HUP | PollFlags::ERR;
    let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
    let mut which = Vec::with_capacity(2);
    for (i, pipe) in pipes.iter().enumerate() {
        if let Some(fd) = pipe {
            fds.push(PollFd::new(fd, flags));
            which.push(i);
        }
    }
    loop {
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let mut ready = [false; 2];
    for (fd, i) in fds.iter().zip(which) {
        ready[i] = !fd.revents().is_empty();
    }
    Ok(ready)
}
