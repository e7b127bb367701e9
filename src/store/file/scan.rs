//! Scanning the `file` store: every entry's metadata, one entry at a time,
//! shard by shard in key order. Each entry file costs an open relative to
//! its shard, one stat and one read of its tail; nothing is kept between
//! entries but the read buffer.
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};

use super::{entry_meta, parse_key};
use crate::key::Key;
use crate::store::journal;
use crate::store::{Listed, Visit};

/// Visit every entry under `dir` (of `namespace`, if given), in key order.
/// A corrupt or vanished entry is skipped: a run that hits it discards it.
pub fn scan(dir: &Path, namespace: Option<&str>, visit: &mut Visit) -> Result<()> {
    let mut hits: HashMap<String, HashMap<[u8; 8], u64>> = HashMap::new();
    for (ns, path) in journal::all(&dir.join("stats"))? {
        if namespace.is_none_or(|n| n == ns) {
            let folded = journal::fold(&path)?;
            if !folded.hits.is_empty() {
                hits.insert(ns, folded.hits);
            }
        }
    }
    let root = dir.join("entries");
    let mut buf = Vec::new();
    for shard in sorted_names(&root)? {
        let shard_path = root.join(&shard);
        let shard_dir = match rustix::fs::open(
            &shard_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // A stray file, or a shard emptied and removed meanwhile.
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT) => continue,
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("cannot read {}", shard_path.display()));
            }
        };
        for name in sorted_names(&shard_path)? {
            let Some(key) = name.to_str().and_then(parse_key) else {
                continue;
            };
            let Ok(fd) = rustix::fs::openat(
                &shard_dir,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            let Some(listed) = entry(File::from(fd), &key, &mut buf) else {
                continue;
            };
            if namespace.is_some_and(|ns| ns != listed.meta.namespace) {
                continue;
            }
            visit(with_hits(listed, &hits))?;
        }
    }
    Ok(())
}

/// One entry file's listing, its hits not yet counted; `None` if it is
/// unreadable or corrupt.
fn entry(file: File, key: &Key, buf: &mut Vec<u8>) -> Option<Listed> {
    let stat = file.metadata().ok()?;
    if !stat.is_file() {
        return None;
    }
    let meta = entry_meta(&file, &stat, key, buf).ok()?;
    Some(Listed {
        last_used: stat.accessed().unwrap_or(SystemTime::UNIX_EPOCH),
        meta,
        size: stat.len(),
        hits: 0,
    })
}

/// The entry with its hits from the journals; its last use is its last
/// hit's access time, or its creation if it never hit.
fn with_hits(mut listed: Listed, hits: &HashMap<String, HashMap<[u8; 8], u64>>) -> Listed {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&listed.meta.key.0[..8]);
    listed.hits = hits
        .get(&listed.meta.namespace)
        .and_then(|h| h.get(&prefix))
        .copied()
        .unwrap_or(0);
    let created = listed.meta.created();
    let used = Some(listed.last_used).filter(|_| listed.hits > 0);
    listed.last_used = used.unwrap_or(created).max(created);
    listed
}

/// The names in `dir`, sorted; none if it does not exist.
pub(super) fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            Ok(names)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}
