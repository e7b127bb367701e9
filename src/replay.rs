//! Replaying a hit: the stored bytes, byte for byte, in the recorded order.
//!
//! When stdout and stderr lead to different files the order between them
//! cannot be observed, so each stream goes out whole in one `io::copy`
//! (sendfile, splice or copy_file_range on Linux: zero copy). Only when both
//! lead to the same file are the recorded runs replayed in order.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

use crate::entry::{Body, Meta, Run, Stream};
use crate::exec::own_stream;

/// How a replay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    Done,
    /// Our stdout closed early (`| head -1`): exit as SIGPIPE would.
    StdoutClosed,
}

pub fn replay(meta: &Meta, body: &Body) -> io::Result<Replayed> {
    let mut sinks = [own_stream(Stream::Stdout), own_stream(Stream::Stderr)];
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
    let mut file = &body.file;
    for run in plan.into_iter().filter(|r| r.len > 0) {
        let i = run.stream as usize;
        let at = pos[i];
        pos[i] += run.len;
        let Some(sink) = &mut sinks[i] else { continue };
        file.seek(SeekFrom::Start(body.start + at))?;
        let copied = io::copy(&mut file.take(run.len), sink);
        match copied {
            Ok(n) if n == run.len => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "cache entry shrank during replay",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                if run.stream == Stream::Stdout {
                    return Ok(Replayed::StdoutClosed);
                }
                sinks[i] = None;
            }
            Err(e) => return Err(e),
        }
        file = &body.file;
    }
    Ok(Replayed::Done)
}

/// Do our stdout and stderr lead to the same file (a terminal, `2>&1`)?
fn same_file(sinks: &[Option<File>; 2]) -> bool {
    match sinks {
        [Some(out), Some(err)] => match (out.metadata(), err.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => true,
        },
        _ => false,
    }
}
