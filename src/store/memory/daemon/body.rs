//! Entry bodies in the daemon. A small one (at most [`INLINE`] bytes) is a
//! plain buffer that goes out inline with its metadata; a larger one lives
//! in a sealed memfd (RAM; no write, grow or shrink possible any more) that
//! a hit receives itself over the socket (`SCM_RIGHTS`): the client reads
//! the daemon's pages directly, no copy crosses the socket.
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use rustix::fs::{MemfdFlags, SealFlags};

use super::proto::{CHUNK, INLINE};

pub enum Bytes {
    Ram(Vec<u8>),
    Sealed(File),
}

/// One stream of an upload: in a buffer while small, then in a memfd.
#[derive(Default)]
pub struct Growing {
    ram: Vec<u8>,
    file: Option<File>,
    pub len: u64,
}

fn memfd() -> io::Result<File> {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    Ok(File::from(rustix::fs::memfd_create(
        "cachier-entry",
        flags,
    )?))
}

impl Growing {
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        self.len += data.len() as u64;
        if let Some(file) = &mut self.file {
            return file.write_all(data);
        }
        self.ram.extend_from_slice(data);
        if self.ram.len() as u64 > INLINE {
            let mut file = memfd()?;
            file.write_all(&self.ram)?;
            self.ram = Vec::new();
            self.file = Some(file);
        }
        Ok(())
    }

    /// The body: this stream (stdout) followed by `then` (stderr).
    pub fn finish(self, then: Growing) -> io::Result<Bytes> {
        if self.file.is_none() && then.file.is_none() && self.len + then.len <= INLINE {
            let mut ram = self.ram;
            ram.extend_from_slice(&then.ram);
            return Ok(Bytes::Ram(ram));
        }
        let mut file = match self.file {
            Some(file) => file,
            None => {
                let mut file = memfd()?;
                file.write_all(&self.ram)?;
                file
            }
        };
        match then.file {
            Some(mut err) => {
                err.seek(SeekFrom::Start(0))?;
                io::copy(&mut err, &mut file)?;
            }
            None => file.write_all(&then.ram)?,
        }
        seal(file)
    }
}

fn seal(file: File) -> io::Result<Bytes> {
    let seals = SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL;
    rustix::fs::fcntl_add_seals(&file, seals)?;
    Ok(Bytes::Sealed(file))
}

impl Bytes {
    pub fn len(&self) -> u64 {
        match self {
            Bytes::Ram(v) => v.len() as u64,
            Bytes::Sealed(f) => f.metadata().map_or(0, |m| m.len()),
        }
    }

    /// The whole body in a buffer, when it is small.
    pub fn small(&self) -> Option<Vec<u8>> {
        match self {
            Bytes::Ram(v) => Some(v.clone()),
            Bytes::Sealed(_) => None,
        }
    }

    /// A file holding the body, for passing to a client.
    pub fn file(&self) -> io::Result<File> {
        match self {
            Bytes::Sealed(f) => f.try_clone(),
            Bytes::Ram(v) => {
                let mut file = memfd()?;
                file.write_all(v)?;
                Ok(file)
            }
        }
    }

    /// Test only: a copy cut short (by its last chunk) or with its first
    /// byte flipped.
    pub fn damaged(&self, truncate: bool) -> io::Result<Bytes> {
        let len = self.len();
        let chunk = CHUNK as u64;
        let keep = if truncate {
            // Down to the last whole chunk, or one chunk less.
            (len.saturating_sub(1) / chunk) * chunk
        } else {
            len
        };
        let flip = |b: &mut [u8]| {
            if !truncate && let Some(first) = b.first_mut() {
                *first ^= 0x55;
            }
        };
        match self {
            Bytes::Ram(v) => {
                let mut v = v[..keep as usize].to_vec();
                flip(&mut v);
                Ok(Bytes::Ram(v))
            }
            Bytes::Sealed(f) => {
                let mut copy = memfd()?;
                let mut src = f.try_clone()?;
                src.seek(SeekFrom::Start(0))?;
                io::copy(&mut io::Read::take(src, keep), &mut copy)?;
                let mut first = [0u8; 1];
                if keep > 0 {
                    copy.read_exact_at(&mut first, 0)?;
                    flip(&mut first);
                    copy.write_all_at(&first, 0)?;
                }
                seal(copy)
            }
        }
    }
}
