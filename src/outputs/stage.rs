//! A restore's staged writes: each file or symlink written under a temp
//! name in its own directory, none visible until the whole archive has
//! passed its checks; then all are renamed into place, or on any fault
//! removed with the directories the restore made.
//!
//! Every directory is reached through descriptors opened one level at a
//! time without following links (`safe_path`), so a symlink in the tree
//! never redirects a write, a rename or a removal.
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use super::archive::Kind;
use super::{safe_path, temp};
use crate::store::read_full;

/// A file write's buffer: zstd decompresses straight into it, and each
/// `write` moves this much (an 8 KiB copy cost a tenth of a large hit).
const BUF: usize = 1 << 20;

/// Why a record was not staged: the archive could not be read (its fault),
/// or the disk refused the write.
pub enum Fault {
    Read(io::Error),
    Write(io::Error),
}

#[derive(Default)]
pub struct Staged {
    /// (directory, temp name, final name), in archive order.
    temps: Vec<(PathBuf, OsString, OsString)>,
    /// Directories this restore made, parents first.
    made: Vec<PathBuf>,
    /// The directory last written in, open.
    dir: Option<(PathBuf, OwnedFd)>,
    /// Directories already swept of stale temp files.
    swept: HashSet<PathBuf>,
    buf: Vec<u8>,
}

impl Staged {
    /// Make the directory `path` (a directory record).
    pub fn dir(&mut self, path: &Path) -> io::Result<()> {
        safe_path::make_dirs(path, &mut self.made).map(drop)
    }

    /// Write a file (`content`) or a symlink (`target`) at `path` under a
    /// temp name.
    pub fn entry(
        &mut self,
        path: &Path,
        kind: Kind,
        mode: u32,
        target: &[u8],
        content: &mut dyn Read,
    ) -> Result<(), Fault> {
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = path.file_name().unwrap_or_default().to_os_string();
        if self.dir.as_ref().is_none_or(|(p, _)| *p != parent) {
            let fd = safe_path::make_dirs(&parent, &mut self.made).map_err(Fault::Write)?;
            if self.swept.insert(parent.clone()) {
                temp::sweep(&fd);
            }
            self.dir = Some((parent.clone(), fd));
        }
        let Some((_, fd)) = self.dir.as_ref() else {
            return Err(Fault::Write(io::Error::other("no directory")));
        };
        let temp = temp::name();
        let written = match kind {
            Kind::Link => rustix::fs::symlinkat(OsStr::from_bytes(target), fd, &temp)
                .map_err(|e| Fault::Write(e.into())),
            _ => write_file(fd, &temp, mode, content, &mut self.buf),
        };
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(fd, &temp, AtFlags::empty());
            return Err(e);
        }
        self.temps.push((parent, temp, name));
        Ok(())
    }

    /// Rename every temp file into place. A failure leaves what is placed
    /// placed and removes the rest.
    pub fn place(mut self) -> Result<(), (PathBuf, io::Error)> {
        self.dir = None;
        let temps = std::mem::take(&mut self.temps);
        let mut left = temps.into_iter();
        let mut dir: Option<(PathBuf, OwnedFd)> = None;
        while let Some((parent, temp, name)) = left.next() {
            let placed = open(&mut dir, &parent)
                .and_then(|fd| rustix::fs::renameat(fd, &temp, fd, &name).map_err(io::Error::from));
            if let Err(e) = placed {
                self.temps = std::iter::once((parent.clone(), temp, name.clone()))
                    .chain(left)
                    .collect();
                self.made.clear();
                self.undo();
                return Err((parent.join(name), e));
            }
        }
        Ok(())
    }

    /// Remove every temp file, then the directories made (only if empty).
    pub fn undo(&mut self) {
        self.dir = None;
        let mut dir: Option<(PathBuf, OwnedFd)> = None;
        for (parent, temp, _) in self.temps.drain(..) {
            if let Ok(fd) = open(&mut dir, &parent) {
                let _ = rustix::fs::unlinkat(fd, &temp, AtFlags::empty());
            }
        }
        drop(dir);
        for made in self.made.drain(..).rev() {
            let (Some(parent), Some(name)) = (made.parent(), made.file_name()) else {
                continue;
            };
            if let Ok(fd) = safe_path::open_dirs(parent) {
                let _ = rustix::fs::unlinkat(&fd, name, AtFlags::REMOVEDIR);
            }
        }
    }
}

/// `parent` opened (kept open while the next records share it).
fn open<'a>(dir: &'a mut Option<(PathBuf, OwnedFd)>, parent: &Path) -> io::Result<&'a OwnedFd> {
    if dir.as_ref().is_none_or(|(p, _)| p != parent) {
        *dir = Some((parent.to_path_buf(), safe_path::open_dirs(parent)?));
    }
    match dir {
        Some((_, fd)) => Ok(fd),
        None => Err(io::Error::other("no directory")),
    }
}

fn write_file(
    dir: &OwnedFd,
    temp: &OsStr,
    mode: u32,
    content: &mut dyn Read,
    buf: &mut Vec<u8>,
) -> Result<(), Fault> {
    // Only the executable bit is restored; the umask applies as to a build.
    let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    let fd = rustix::fs::openat(
        dir,
        temp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )
    .map_err(|e| Fault::Write(e.into()))?;
    let file = File::from(fd);
    buf.resize(BUF, 0);
    loop {
        let n = read_full(content, buf).map_err(Fault::Read)?;
        if n == 0 {
            return Ok(());
        }
        (&file).write_all(&buf[..n]).map_err(Fault::Write)?;
    }
}
