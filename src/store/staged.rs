//! A miss's output spooled to two local temp files, stdout and stderr, for
//! the server stores that upload it in chunks, encoded as they are
//! configured (see `compress`; a tiny output raw), when it is committed.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result};

use super::compress::{self, Encoding};
use crate::entry::{Meta, Stream};

#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "redis",
        feature = "mongo",
        feature = "s3"
    )),
    allow(dead_code)
)]
pub struct Staged {
    stdout: File,
    stderr: File,
    encoding: Encoding,
    /// Bytes written, both streams.
    len: u64,
}

/// Output of at most this many bytes is sent raw whatever the encoding:
/// zstd would save a few bytes on it, and every hit would pay for a
/// decoder (about 0.05 ms of a pooled Redis hit).
const TINY: u64 = 512;

#[cfg_attr(
    not(any(
        feature = "postgres",
        feature = "redis",
        feature = "mongo",
        feature = "s3"
    )),
    allow(dead_code)
)]
impl Staged {
    /// Output to be sent as `encoding`.
    pub fn new(encoding: Encoding) -> Result<Staged> {
        let temp = || tempfile::tempfile().context("cannot create a temp file for the output");
        Ok(Staged {
            stdout: temp()?,
            stderr: temp()?,
            encoding,
            len: 0,
        })
    }

    /// `meta` as stored beside this body: with its encoding.
    pub fn stored_meta(&self, meta: &Meta) -> Meta {
        Meta {
            encoding: self.encoding(),
            ..meta.clone()
        }
    }

    /// How the body is sent: as configured, but raw when [`TINY`].
    fn encoding(&self) -> Encoding {
        if self.len <= TINY {
            Encoding::Raw
        } else {
            self.encoding
        }
    }

    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        match stream {
            Stream::Stdout => self.stdout.write_all(data),
            Stream::Stderr => self.stderr.write_all(data),
        }
    }

    /// Both streams from their start, stdout then stderr, encoded.
    pub fn body(&mut self) -> io::Result<Box<dyn Read + '_>> {
        self.stdout.seek(SeekFrom::Start(0))?;
        self.stderr.seek(SeekFrom::Start(0))?;
        compress::encode((&self.stdout).chain(&self.stderr), self.encoding())
    }
}

/// Read until `buf` is full or the input ends; how many bytes came. The
/// stores upload spooled output in chunks of this size; a restore writes
/// whole buffers with it.
pub fn read_full(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
