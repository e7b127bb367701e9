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

/// Buffers one thread reuses from shard to shard.
#[derive(Default)]
pub struct Scratch {
    index: Vec<u8>,
    fresh: Vec<u8>,
    read: Vec<u8>,
    packing: Vec<u8>,
}

/// A record of a shard's next index: kept from the one read (where it
/// starts there), or made now (its stamp, CBOR length, and where its
/// packed metadata lies in [`Scratch::fresh`]).
enum Next {
    Kept(usize),
    Made(Stamp, u64, std::ops::Range<usize>),
}

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
    scratch: &mut Scratch,
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
        .filter(|n| n.len() == 2 && lower_hex(n))
        .map(|n| index_dir.join(n));
    let bytes = std::mem::take(&mut scratch.index);
    let index = match &index_path {
        Some(path) => Index::load(path, bytes),
        None => Index::empty(bytes),
    };
    // The next index, in key order (written only when enough differs).
    let mut plan: Vec<([u8; 32], Next)> = Vec::new();
    let fresh = &mut scratch.fresh;
    fresh.clear();
    let (mut made, mut kept) = (0usize, 0usize);
    let (buf, packing) = (&mut scratch.read, &mut scratch.packing);
    let mut out = Vec::new();
    for name in sorted_names(&shard_path)? {
        // Only names as the store writes them: another spelling of a key
        // (upper-case hex) is no entry `get` would read, and would list
        // one entry twice.
        let Some(key) = name.to_str().filter(|n| lower_hex(n)).and_then(parse_key) else {
            continue;
        };
        let stat = rustix::fs::statat(&shard_dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let regular = stat
            .as_ref()
            .filter(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile);
        let stamp = regular.map(Stamp::of_stat);
        // From the index, when the file is the one its record was made of.
        let known = regular.zip(stamp).and_then(|(st, stamp)| {
            let record = index.find(&key.0).filter(|r| r.stamp == stamp)?;
            let meta = packed::unpack(record.meta, &key).ok()?;
            format::fits(&meta, record.cbor_len, stamp.size).then_some((meta, record, st))
        });
        let listed = match known {
            Some((mut meta, record, st)) => {
                plan.push((key.0, Next::Kept(record.at)));
                kept += 1;
                meta.created_ms = millis_since_epoch(time(st.st_mtime, st.st_mtime_nsec));
                Listed {
                    meta,
                    size: record.stamp.size,
                    last_used: time(st.st_atime, st.st_atime_nsec),
                    hits: 0,
                }
            }
            None => {
                let Ok(fd) = rustix::fs::openat(
                    &shard_dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) else {
                    continue;
                };
                let file = File::from(fd);
                let Some((listed, read, cbor_len)) = read_entry(&file, &key, buf, packing) else {
                    continue;
                };
                // Remembered only if what was read is the file stat'ed above
                // (not a symlink's target) and it has settled.
                if stamp.is_some_and(|s| s == read) && read.settled(began) {
                    plan.push((
                        key.0,
                        Next::Made(read, cbor_len, fresh.len()..fresh.len() + packing.len()),
                    ));
                    fresh.extend_from_slice(packing);
                    made += 1;
                }
                listed
            }
        };
        if namespace.is_none_or(|ns| ns == listed.meta.namespace) {
            out.push(listed);
        }
    }
    // Rewritten once an eighth of it has changed (a record to add, or
    // one not carried over), not at every change: in a store that keeps
    // changing, each listing would otherwise rewrite every shard's index
    // (~2 MiB each at a million entries). Until then the changed entries
    // are read from their files, as without an index.
    let changed = made + index.len().saturating_sub(kept);
    let rewrite = changed > 0 && (index.len() == 0 || changed * 8 >= index.len());
    if let Some(path) = index_path.filter(|_| rewrite) {
        let mut next = Builder::new(Vec::new());
        for (key, record) in plan {
            match record {
                Next::Kept(at) => {
                    let r = index.record(at);
                    next.push(&key, &r.stamp, r.cbor_len, r.meta);
                }
                Next::Made(stamp, cbor_len, packed) => {
                    next.push(&key, &stamp, cbor_len, &fresh[packed]);
                }
            }
        }
        next.write(&path);
    }
    scratch.index = index.into_bytes();
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
    let stamp = Stamp::of_stat(&st);
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

/// Whether `name` is lower-case hex, as the store names shards and entries.
fn lower_hex(name: &str) -> bool {
    name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
