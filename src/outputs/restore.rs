//! Restore: put a verified entry's outputs back on disk.
//!
//! One pass over the archive (its checksum verified before, with the rest
//! of the entry): each record is checked against the key's declarations
//! and the checksummed metadata (any fault: the entry is corrupt) and the
//! local tree (a symlink or directory in the way: blocked) before its
//! bytes are staged under a temp name in its directory (`stage`). Nothing
//! is renamed into place until the whole archive has passed; on any fault
//! the staged files, and the directories made for them, are removed. So a
//! concurrent reader sees the old file or the new one, never a torn one,
//! and an archive that breaks a rule anywhere changes nothing visible.
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::FileType;

use super::Declared;
use super::archive::{self, Bad, Kind, MAX_PATH};
use super::safe_path::{self, Blocked};
use super::stage::{Fault, Staged};
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
    let mut staged = Staged::default();
    match stage(declared, meta, body, &mut staged) {
        Ok(()) => staged.place().map_err(|(path, e)| {
            Failure::Blocked(format!("cannot restore `{}`: {e}", path.display()))
        }),
        Err(failure) => {
            staged.undo();
            Err(failure)
        }
    }
}

fn corrupt(why: impl Into<String>) -> Failure {
    Failure::Corrupt(why.into())
}

/// Check every record, staging each while the local tree lets it. A
/// blocked restore still reads to the end: a corrupt archive is discarded
/// whatever stands in the way.
fn stage(
    declared: &Declared,
    meta: &Meta,
    body: &Body,
    staged: &mut Staged,
) -> Result<(), Failure> {
    let mut reader = archive::open(meta, body)?;
    let mut seen: HashMap<Vec<u8>, Kind> = HashMap::new();
    // Every ancestor of a record: none may be a file or symlink.
    let mut dirs: HashSet<Vec<u8>> = HashSet::new();
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
        let mut target = Vec::new();
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
        if seen.insert(rec.path.clone(), rec.kind).is_some() {
            return Err(corrupt(format!("`{}` is stored twice", path.display())));
        }
        // A file or link must not stand where another record needs a directory.
        let under_a_file = rec.kind != Kind::Dir && dirs.contains(&rec.path);
        for up in path.ancestors().skip(1) {
            let up = up.as_os_str().as_bytes();
            if up.is_empty() || !dirs.insert(up.to_vec()) {
                break;
            }
        }
        let ancestor_not_dir = path.ancestors().skip(1).any(|up| {
            seen.get(up.as_os_str().as_bytes())
                .is_some_and(|k| *k != Kind::Dir)
        });
        if under_a_file || ancestor_not_dir {
            return Err(corrupt("an output lies under a file or symlink"));
        }
        if in_the_way.is_none() {
            in_the_way = local_conflict(path, rec.kind).err();
            if in_the_way.is_some() {
                staged.undo();
            }
        }
        if in_the_way.is_some() {
            continue;
        }
        let written = match rec.kind {
            Kind::Dir => staged.dir(path).map_err(Fault::Write),
            kind => staged.entry(path, kind, rec.mode, &target, &mut reader.content()),
        };
        match written {
            Ok(()) => {}
            Err(Fault::Read(e)) => return Err(corrupt(format!("unreadable outputs: {e}"))),
            Err(Fault::Write(e)) => {
                in_the_way = Some(Blocked(format!("cannot restore `{}`: {e}", path.display())));
                staged.undo();
            }
        }
    }
    if (count, size) != (meta.outputs.count, meta.outputs.size) {
        return Err(corrupt("the outputs do not match the metadata"));
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
