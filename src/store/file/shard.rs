//! Listing one shard of the file store: each entry's file is stat'ed, and
//! its metadata taken from the shard's listing index (see index.rs) when
//! the file's stamp matches, else read from the file as before (and
//! remembered in the index once settled).
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::index::{Builder, Index, Stamp};
use super::{format, packed, parse_key, scan::sorted_names};
use crate::entry::millis_since_epoch;
use crate::store::Listed;

/// Every entry of the shard `name` under `root` (of `namespace`, if
/// given), in key order, hits not yet counted; the shard's index in
/// `index_dir` is brought up to date when it is not. A vanished or corrupt
/// entry is left out.
pub fn list(
    root: &Path,
    index_dir: &Path,
    name: &std::ffi::OsStr,
    namespace: Option<&str>,
    began: SystemTime,
) -> Result<Vec<Listed>> {
    let shard_path = root.join(name);
    let shard_dir = match rustix::fs::open(
        &shard_path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // A stray file, or a shard emptied and removed meanwhile.
        Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => {
            return Err(io::Error::from(e))
                .with_context(|| format!("cannot read {}", shard_path.display()));
        }
    };
    // Only shards named as the store names them have an index.
    let index_path = name
        .to_str()
        .filter(|n| n.len() == 2 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .map(|n| index_dir.join(n));
    let index = index_path.as_deref().map_or_else(Index::empty, Index::load);
    let mut next = Builder::new();
    // Whether the next index differs from the one read: a record added,
    // or one of the old ones not carried over.
    let (mut added, mut kept) = (false, 0usize);
    let (mut buf, mut packing) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    for name in sorted_names(&shard_path)? {
        let Some(key) = name.to_str().and_then(parse_key) else {
            continue;
        };
        let stat = rustix::fs::statat(&shard_dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let regular = stat
            .as_ref()
            .filter(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile);
        let stamp = regular.map(Stamp::of);
        // From the index, when the file is the one its record was made of.
        let known = stamp.and_then(|stamp| {
            let record = index.find(&key.0).filter(|r| r.stamp == stamp)?;
            let meta = packed::unpack(record.meta, &key).ok()?;
            format::fits(&meta, record.cbor_len, stamp.size).then_some((meta, record))
        });
        let listed = match (known, regular) {
            (Some((mut meta, record)), Some(st)) => {
                next.push(&key.0, &record.stamp, record.cbor_len, record.meta);
                kept += 1;
                meta.created_ms = millis_since_epoch(time(st.st_mtime, st.st_mtime_nsec));
                Listed {
                    meta,
                    size: Stamp::of(st).size,
                    last_used: time(st.st_atime, st.st_atime_nsec),
                    hits: 0,
                }
            }
            _ => {
                let Ok(fd) = rustix::fs::openat(
                    &shard_dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                let file = File::from(fd);
                let Some((listed, read, cbor_len)) =
                    read_entry(&file, &key, &mut buf, &mut packing)
                else {
                    continue;
                };
                // Remembered only if what was read is the file stat'ed above
                // (not a symlink's target) and it has settled.
                if stamp.is_some_and(|s| s == read) && read.settled(began) {
                    next.push(&key.0, &read, cbor_len, &packing);
                    added = true;
                }
                listed
            }
        };
        if namespace.is_none_or(|ns| ns == listed.meta.namespace) {
            out.push(listed);
        }
    }
    if let Some(path) = index_path.filter(|_| added || kept != index.len()) {
        next.write(&path);
    }
    Ok(out)
}

/// An entry file's listing (hits not counted), the stamp of what was read
/// and the length of its metadata's CBOR, the metadata packed into
/// `packing`; `None` if it is unreadable or corrupt.
fn read_entry(
    file: &File,
    key: &crate::key::Key,
    buf: &mut Vec<u8>,
    packing: &mut Vec<u8>,
) -> Option<(Listed, Stamp, u64)> {
    let st = rustix::fs::fstat(file).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    let stamp = Stamp::of(&st);
    let (mut meta, cbor_len) = format::read_meta_sized(file, stamp.size, key, buf).ok()?;
    packing.clear();
    packed::pack(&meta, packing);
    meta.created_ms = millis_since_epoch(time(st.st_mtime, st.st_mtime_nsec));
    let listed = Listed {
        last_used: time(st.st_atime, st.st_atime_nsec),
        meta,
        size: stamp.size,
        hits: 0,
    };
    Some((listed, stamp, cbor_len))
}

/// A `stat` time as a `SystemTime`, as the standard library makes it.
#[allow(clippy::useless_conversion)]
fn time(secs: impl Into<i64>, nanos: impl TryInto<u32>) -> SystemTime {
    let (secs, nanos) = (secs.into(), nanos.try_into().unwrap_or(0).min(999_999_999));
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nanos)
    }
}
