//! Output held back instead of streamed (`--stale-if-error`): the command's
//! stdout and stderr go to a local temp file in arrival order, and out, in
//! that order, only once its exit code says whether they are the answer.
use std::fs::File;
use std::io::{self, Write};

use crate::entry::{Body, Run, Stream};
use crate::exec::own_stream;
use crate::replay::Replayed;

pub struct Held {
    file: File,
}

impl Held {
    pub fn new() -> io::Result<Held> {
        Ok(Held {
            file: tempfile::tempfile()?,
        })
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    /// Send what was held to our stdout and stderr, in the order of `runs`.
    pub fn release(self, runs: &[Run]) -> io::Result<Replayed> {
        let body = Body {
            file: self.file,
            start: 0,
        };
        let mut sinks = [own_stream(Stream::Stdout), own_stream(Stream::Stderr)];
        let mut at = 0u64;
        for run in runs {
            let i = run.stream as usize;
            if let Some(sink) = &mut sinks[i] {
                let sent = body.each_chunk(at, run.len, |chunk| sink.write_all(chunk));
                match sent {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe && i == 0 => {
                        return Ok(Replayed::StdoutClosed);
                    }
                    // A closed stderr drops the rest of stderr, as a replay does.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => sinks[i] = None,
                    other => other?,
                }
            }
            at += run.len;
        }
        Ok(Replayed::Done)
    }
}
