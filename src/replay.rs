//! Replaying a hit: the stored bytes, byte for byte, in the recorded order.
//!
//! When stdout and stderr lead to different files the order between them
//! cannot be observed, so each stream goes out whole in one `sendfile`
//! (zero copy, into a pipe, file or socket). Only when both lead to the same
//! file are the recorded runs replayed in order.
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

use rustix::io::Errno;

use crate::entry::{Body, Meta, Run, Stream};

/// How a replay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    Done,
    /// Our stdout closed early (`| head -1`): exit as SIGPIPE would.
    StdoutClosed,
}

/// Our own stdout or stderr, borrowed (not duplicated: two `dup`s and two
/// `close`s were a tenth of a small hit's system calls).
fn own(stream: Stream) -> BorrowedFd<'static> {
    match stream {
        Stream::Stdout => rustix::stdio::stdout(),
        Stream::Stderr => rustix::stdio::stderr(),
    }
}

pub fn replay(meta: &Meta, body: &Body) -> io::Result<Replayed> {
    let mut sinks = [Some(own(Stream::Stdout)), Some(own(Stream::Stderr))];
    let whole = |s: Stream| Run {
        stream: s,
        len: meta.len(s),
    };
    let plan: Vec<Run> = if meta.stdout_len == 0 || meta.stderr_len == 0 || !same_file(&sinks) {
        vec![whole(Stream::Stdout), whole(Stream::Stderr)]
    } else {
        meta.runs.clone()
    };
    let mut pos = [meta.offset(Stream::Stdout), meta.offset(Stream::Stderr)];
    for run in plan.into_iter().filter(|r| r.len > 0) {
        let i = run.stream as usize;
        let at = body.start + pos[i];
        pos[i] += run.len;
        let Some(sink) = sinks[i] else { continue };
        match send(&body.file, at, run.len, sink) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                if run.stream == Stream::Stdout {
                    return Ok(Replayed::StdoutClosed);
                }
                sinks[i] = None;
            }
            // A closed descriptor (only when embedded: the binary opens
            // /dev/null on it at start-up) takes nothing, as before.
            Err(e) if e.raw_os_error() == Some(Errno::BADF.raw_os_error()) => sinks[i] = None,
            Err(e) => return Err(e),
        }
    }
    Ok(Replayed::Done)
}

/// Write one stored stream to our stdout, whole (for `cachier show`).
pub fn send_stream(meta: &Meta, body: &Body, stream: Stream) -> io::Result<Replayed> {
    match send(
        &body.file,
        body.start + meta.offset(stream),
        meta.len(stream),
        own(Stream::Stdout),
    ) {
        Ok(()) => Ok(Replayed::Done),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Replayed::StdoutClosed),
        // Closed (only when embedded), as in `replay`: nothing to write to.
        Err(e) if e.raw_os_error() == Some(Errno::BADF.raw_os_error()) => Ok(Replayed::Done),
        Err(e) => Err(e),
    }
}

/// Copy `len` bytes at `offset` of `file` to `sink`: `sendfile` where the
/// kernel takes it, else a plain read/write loop.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send(file: &File, offset: u64, len: u64, sink: BorrowedFd<'_>) -> io::Result<()> {
    let end = offset + len;
    let mut at = offset;
    while at < end {
        let want = (end - at).min(1 << 30) as usize;
        match rustix::fs::sendfile(sink, file, Some(&mut at), want) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "cache entry shrank during replay",
                ));
            }
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait_writable(sink)?,
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if at == offset => {
                return copy_plain(file, offset, len, sink);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Copy `len` bytes at `offset` of `file` to `sink` (no `sendfile` here).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send(file: &File, offset: u64, len: u64, sink: BorrowedFd<'_>) -> io::Result<()> {
    copy_plain(file, offset, len, sink)
}

fn copy_plain(file: &File, offset: u64, len: u64, sink: BorrowedFd<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; (128 * 1024).min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        let n = file.read_at(&mut buf[..want], offset + done)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cache entry shrank during replay",
            ));
        }
        let mut left = &buf[..n];
        while !left.is_empty() {
            match rustix::io::write(sink, left) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => left = &left[k..],
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => wait_writable(sink)?,
                Err(e) => return Err(e.into()),
            }
        }
        done += n as u64;
    }
    Ok(())
}

/// A caller may hand us a non-blocking stdout: wait until it takes more.
fn wait_writable(sink: BorrowedFd<'_>) -> io::Result<()> {
    let mut fds = [rustix::event::PollFd::new(
        &sink,
        rustix::event::PollFlags::OUT,
    )];
    match rustix::event::poll(&mut fds, None) {
        Ok(_) | Err(Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Do our stdout and stderr lead to the same file (a terminal, `2>&1`)?
fn same_file(sinks: &[Option<BorrowedFd<'_>>; 2]) -> bool {
    match sinks {
        [Some(out), Some(err)] => match (rustix::fs::fstat(out), rustix::fs::fstat(err)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => true,
        },
        _ => false,
    }
}
