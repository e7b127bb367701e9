//! Restore: put a verified entry's outputs back on disk.
//!
//! Two passes over the archive. The first writes nothing: it checks every
//! record against the key's declarations and the checksummed metadata (any
//! fault: the entry is corrupt) and the local tree (a symlink or directory
//! in the way: blocked). The second writes each file to a temp name in its
//! directory and renames it into place, through directory descriptors
//! opened without following links, so a concurrent reader sees the old
//! file or the new one, never a torn one.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::Declared;
use super::archive::{self, Bad, Kind, MAX_PATH};
use super::safe_path::{self, Blocked};
use crate::entry::{Body, Meta, Outputs};

/// Why the outputs were not restored; the command then runs.
#[derive(Debug)]
pub enum Failure {
    /// The archive breaks a rule: discard the entry.
    Corrupt(String),
    /// The local tree is in the way, or a write failed: keep the entry.
    Blocked(String),
}

impl From<Bad> for Failure {
    fn from(bad: Bad) -> Failure {
        Failure::Corrupt(bad.0)
    }
}

/// Restore `meta`'s outputs (its body verified) under the working directory.
pub fn restore(declared: &Declared, meta: &Meta, body: &Body) -> Result<(), Failure> {
    if meta.outputs == Outputs::default() {
        return Ok(());
    }
    check(declared, meta, body)?;
    write(meta, body)
        .map_err(|(path, e)| Failure::Blocked(format!("cannot restore `{}`: {e}", path.display())))
}

fn corrupt(why: impl Into<String>) -> Failure {
    Failure::Corrupt(why.into())
}

/// The first pass: nothing is written.
fn check(declared: &Declared, meta: &Meta, body: &Body) -> Result<(), Failure> {
    let mut reader = archive::open(meta, body)?;
    let mut seen: HashMap<Vec<u8>, Kind> = HashMap::new();
    let (mut count, mut size) = (0u64, 0u64);
    let mut in_the_way: Option<Blocked> = None;
    while let Some(rec) = reader.next()? {
        let path = safe_path::checked(&rec.path).map_err(corrupt)?;
        if !declared.covers(path) {
            return Err(corrupt(format!(
                "`{}` is outside the declared outputs",
                path.display()
            )));
        }
        if rec.mode & !0o777 != 0 {
            return Err(corrupt("an output has a setuid, setgid or sticky bit"));
        }
        count += 1;
        if count > meta.outputs.count {
            return Err(corrupt("more outputs than the metadata declares"));
        }
        match rec.kind {
            Kind::File => {
                size = size.saturating_add(rec.len);
                if size > meta.outputs.size {
                    return Err(corrupt("outputs larger than the metadata declares"));
                }
            }
            Kind::Dir if rec.len != 0 => return Err(corrupt("a directory record has content")),
            Kind::Dir => {}
            Kind::Link => {
                if rec.len == 0 || rec.len > u64::from(MAX_PATH) {
                    return Err(corrupt("a symlink target length is out of range"));
                }
                let mut target = Vec::new();
                reader
                    .content()
                    .read_to_end(&mut target)
                    .map_err(|e| corrupt(format!("unreadable outputs: {e}")))?;
                if !safe_path::link_stays(declared, &rec.path, &target) {
                    return Err(corrupt(format!(
                        "symlink `{}` points outside the declared outputs",
                        path.display()
                    )));
                }
            }
        }
        if in_the_way.is_none() {
            in_the_way = local_conflict(path, rec.kind).err();
        }
        if seen.insert(rec.path.clone(), rec.kind).is_some() {
            return Err(corrupt(format!("`{}` is stored twice", path.display())));
        }
    }
    if (count, size) != (meta.outputs.count, meta.outputs.size) {
        return Err(corrupt("the outputs do not match the metadata"));
    }
    // A file or link must not stand where another record needs a directory.
    for path in seen.keys() {
        let path = Path::new(OsStr::from_bytes(path));
        for up in path.ancestors().skip(1) {
            let up = up.as_os_str().as_bytes();
            if seen.get(up).is_some_and(|k| *k != Kind::Dir) {
                return Err(corrupt("an output lies under a file or symlink"));
            }
        }
    }
    match in_the_way {
        Some(Blocked(why)) => Err(Failure::Blocked(why)),
        None => Ok(()),
    }
}

/// Whether the local tree lets `path` be restored as `kind`.
fn local_conflict(path: &Path, kind: Kind) -> Result<(), Blocked> {
    let local = safe_path::local_kind(path)?;
    match (kind, local) {
        (_, None) => Ok(()),
        (Kind::Dir, Some(FileType::Directory)) => Ok(()),
        (Kind::Dir, Some(_)) => Err(safe_path::blocked(path, "is not a directory here")),
        (_, Some(FileType::Directory)) => Err(safe_path::blocked(path, "is a directory here")),
        (_, Some(_)) => Ok(()),
    }
}

/// The second pass: write every record.
fn write(meta: &Meta, body: &Body) -> Result<(), (PathBuf, io::Error)> {
    let mut reader =
        archive::open(meta, body).map_err(|b| (PathBuf::new(), io::Error::other(b.0)))?;
    let mut dir: Option<(PathBuf, OwnedFd)> = None;
    loop {
        let rec = match reader.next() {
            Ok(Some(rec)) => rec,
            Ok(None) => return Ok(()),
            Err(b) => return Err((PathBuf::new(), io::Error::other(b.0))),
        };
        let Ok(path) = safe_path::checked(&rec.path) else {
            return Err((PathBuf::new(), io::Error::other("the outputs changed")));
        };
        let path = path.to_path_buf();
        let fail = |e: io::Error| (path.clone(), e);
        if rec.kind == Kind::Dir {
            safe_path::make_dirs(&path).map_err(fail)?;
            continue;
        }
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = path.file_name().unwrap_or_default();
        if dir.as_ref().is_none_or(|(p, _)| *p != parent) {
            dir = Some((parent.clone(), safe_path::make_dirs(&parent).map_err(fail)?));
        }
        let Some((_, fd)) = dir.as_ref() else {
            continue;
        };
        let temp = temp_name();
        let placed = match rec.kind {
            Kind::Link => {
                let mut target = Vec::new();
                reader.content().read_to_end(&mut target).map_err(fail)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), fd, &temp)
                    .map_err(io::Error::from)
            }
            _ => write_file(fd, &temp, rec.mode, &mut reader.content()),
        }
        .and_then(|()| rustix::fs::renameat(fd, &temp, fd, name).map_err(io::Error::from));
        if let Err(e) = placed {
            let _ = rustix::fs::unlinkat(fd, &temp, AtFlags::empty());
            return Err(fail(e));
        }
    }
}

fn write_file(dir: &OwnedFd, temp: &OsStr, mode: u32, content: &mut dyn Read) -> io::Result<()> {
    // Only the executable bit is restored; the umask applies as to a build.
    let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
    let fd = rustix::fs::openat(
        dir,
        temp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    let mut file = File::from(fd);
    io::copy(content, &mut file)?;
    Ok(())
}

/// A name no other restore (this process or another) is using.
fn temp_name() -> std::ffi::OsString {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".cachier-restore-{}-{n}.tmp", std::process::id()).into()
}
