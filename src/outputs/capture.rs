//! Capture: archive the declared outputs after a run that is stored.
//!
//! Paths are gathered first (sorted by bytes, so a directory comes before
//! what it holds, and deduplicated when two declarations overlap), then
//! streamed one file at a time through zstd: memory holds the path list,
//! never file content.
use std::collections::BTreeSet;
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Declared;
use super::archive::{Kind, Record, Writer};
use super::pattern::Glob;
use super::{safe_path, temp};
use crate::entry::Outputs;

/// Why the outputs were not captured; the run is then not stored.
#[derive(Debug)]
pub enum Captured {
    /// A declared output does not exist (or a glob matched nothing).
    Missing(String),
    /// Something captured would not restore safely (a symlink leaving the
    /// declared outputs).
    Refused(String),
    /// The archive passed the room left under `--entry-size-limit`.
    TooLarge,
    Failed(io::Error),
}

impl std::fmt::Display for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Captured::Missing(why) | Captured::Refused(why) => f.write_str(why),
            Captured::TooLarge => f.write_str("they exceed --entry-size-limit"),
            Captured::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Archive `declared` (relative to the working directory) into `out`;
/// `room` is how many archive bytes the entry size limit leaves.
pub fn capture(
    declared: &Declared,
    out: impl Write,
    room: Option<u64>,
) -> Result<Outputs, Captured> {
    let paths = gather(declared)?;
    let mut tee = Tee {
        out,
        hasher: blake3::Hasher::new(),
        len: 0,
        room,
    };
    let mut outputs = Outputs::default();
    let mut writer = Writer::new(&mut tee).map_err(|e| fail(e, room))?;
    let mut special = Vec::new();
    for rel in &paths {
        let meta = fs::symlink_metadata(rel).map_err(|e| fail(e, room))?;
        let kind = meta.file_type();
        let path = rel.as_os_str().as_bytes().to_vec();
        let mode = meta.mode() & 0o777;
        if kind.is_dir() {
            let rec = Record {
                kind: Kind::Dir,
                path,
                mode,
                len: 0,
            };
            writer
                .record(&rec, &mut io::empty())
                .map_err(|e| fail(e, room))?;
        } else if kind.is_symlink() {
            let target = fs::read_link(rel)
                .map_err(|e| fail(e, room))?
                .into_os_string()
                .into_vec();
            if !safe_path::link_stays(declared, &path, &target) {
                return Err(Captured::Refused(format!(
                    "symlink `{}` points outside the declared outputs (to `{}`)",
                    rel.display(),
                    String::from_utf8_lossy(&target)
                )));
            }
            let rec = Record {
                kind: Kind::Link,
                path,
                mode: 0o777,
                len: target.len() as u64,
            };
            writer
                .record(&rec, &mut &target[..])
                .map_err(|e| fail(e, room))?;
        } else if kind.is_file() {
            let mut file = File::options()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(rel)
                .map_err(|e| fail(e, room))?;
            let len = file.metadata().map_err(|e| fail(e, room))?.len();
            let rec = Record {
                kind: Kind::File,
                path,
                mode,
                len,
            };
            writer.record(&rec, &mut file).map_err(|e| fail(e, room))?;
            outputs.size += len;
        } else {
            special.push(rel.display().to_string());
            continue;
        }
        outputs.count += 1;
    }
    writer.finish().map_err(|e| fail(e, room))?;
    if let Some(first) = special.first() {
        crate::warn::once(&format!(
            "--output: left out {} special file(s) (sockets, devices, FIFOs), e.g. `{first}`",
            special.len()
        ));
    }
    outputs.len = tee.len;
    outputs.blake3 = *tee.hasher.finalize().as_bytes();
    Ok(outputs)
}

fn fail(e: io::Error, room: Option<u64>) -> Captured {
    if e.kind() == io::ErrorKind::FileTooLarge && room.is_some() {
        Captured::TooLarge
    } else {
        Captured::Failed(e)
    }
}

/// Every declared path, sorted and deduplicated.
fn gather(declared: &Declared) -> Result<BTreeSet<PathBuf>, Captured> {
    let mut all = BTreeSet::new();
    for root in declared.roots() {
        match fs::symlink_metadata(root) {
            Ok(meta) => take(declared, root, &meta, &mut all).map_err(Captured::Failed)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Captured::Missing(format!(
                    "declared output `{}` does not exist",
                    root.display()
                )));
            }
            Err(e) => return Err(Captured::Failed(e)),
        }
    }
    for glob in declared.globs() {
        let before = all.len();
        let base = literal_base(glob.raw());
        if let Ok(meta) = fs::symlink_metadata(&base) {
            find(declared, glob, &base, &meta, &mut all).map_err(Captured::Failed)?;
        }
        if all.len() == before && !all.iter().any(|p| declared_by(glob, p)) {
            return Err(Captured::Missing(format!(
                "declared output `{}` matches nothing",
                glob.shown()
            )));
        }
    }
    Ok(all)
}

fn declared_by(glob: &Glob, path: &Path) -> bool {
    path.ancestors().any(|a| glob.matches(a))
}

/// `path` and, for a directory, all under it that is not excluded.
fn take(
    declared: &Declared,
    path: &Path,
    meta: &Metadata,
    all: &mut BTreeSet<PathBuf>,
) -> io::Result<()> {
    if !declared.covers(path) {
        return Ok(());
    }
    all.insert(path.to_path_buf());
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            // A killed restore's temp file is not the command's output.
            if temp::is_ours(&entry.file_name()) {
                continue;
            }
            let child = entry.path();
            take(declared, &child, &fs::symlink_metadata(&child)?, all)?;
        }
    }
    Ok(())
}

/// Walk `dir` (never following links, skipping `.git`) for what `glob` matches.
fn find(
    declared: &Declared,
    glob: &Glob,
    path: &Path,
    meta: &Metadata,
    all: &mut BTreeSet<PathBuf>,
) -> io::Result<()> {
    let rel = path.strip_prefix(".").unwrap_or(path);
    if !rel.as_os_str().is_empty() && glob.matches(rel) {
        return take(declared, rel, meta, all);
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_name() == ".git" || temp::is_ours(&entry.file_name()) {
                continue;
            }
            let child = entry.path();
            find(declared, glob, &child, &fs::symlink_metadata(&child)?, all)?;
        }
    }
    Ok(())
}

/// The directories of a glob before its first wildcard (`.` if none).
fn literal_base(pattern: &[u8]) -> PathBuf {
    let mut base = PathBuf::from(".");
    for part in pattern.split(|&b| b == b'/') {
        if part.iter().any(|b| b"*?[".contains(b)) {
            break;
        }
        base.push(std::ffi::OsStr::from_bytes(part));
    }
    base
}

/// Counts and hashes what goes into the entry, and stops at the size limit.
struct Tee<W> {
    out: W,
    hasher: blake3::Hasher,
    len: u64,
    room: Option<u64>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self
            .room
            .is_some_and(|room| self.len + buf.len() as u64 > room)
        {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        self.out.write_all(buf)?;
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// [`capture`] into an entry being written, after its stdout and stderr.
pub fn capture_into(
    declared: &Declared,
    spool: &mut dyn crate::store::Spool,
    room: Option<u64>,
) -> Result<Outputs, Captured> {
    capture(declared, SpoolOut(spool), room)
}

struct SpoolOut<'a>(&'a mut dyn crate::store::Spool);

impl Write for SpoolOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_outputs(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
