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
use super::{format, keys, packed};
use crate::entry::millis_since_epoch;
use crate::store::Listed;

/// Buffers one thread reuses from shard to shard.
#[derive(Default)]
pub struct Scratch {
    index: Vec<u8>,
    /// What the shard's directory reads into, and the keys it names.
    dirents: Vec<u8>,
    keys: Vec<[u8; 32]>,
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
    // Only names as the store writes them (see keys.rs), in key order, as
    // the index's records are: a cursor walks both at once.
    let mut sorted = std::mem::take(&mut scratch.keys);
    let read = keys::sorted_keys(&shard_dir, &shard_path, &mut scratch.dirents, &mut sorted);
    if let Err(e) = read {
        scratch.keys = sorted;
        scratch.index = index.into_bytes();
        return Err(e);
    }
    let mut records = index.cursor();
    let mut out = Vec::with_capacity(sorted.len());
    let mut spelled = [0u8; 65];
    for &key in &sorted {
        let key = crate::key::Key(key);
        let name = keys::name_of(&key.0, &mut spelled);
        let stat = rustix::fs::statat(&shard_dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let regular = stat
            .as_ref()
            .filter(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile);
        let stamp = regular.map(Stamp::of_stat);
        // From the index, when the file is the one its record was made of.
        let known = regular.zip(stamp).and_then(|(st, stamp)| {
            let record = records.find(&key.0).filter(|r| r.stamp == stamp)?;
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
                    name,
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
    scratch.keys = sorted;
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

#[cfg(test)]
mod tests {
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::entry::Meta;
    use crate::key::Key;
    use crate::store::Store;

    fn key(i: u8) -> Key {
        let mut key = [0u8; 32];
        (key[0], key[1]) = (0xab, i);
        Key(key)
    }

    /// The (argv, key) of each entry listed.
    fn argvs(listed: &[Listed]) -> Vec<(String, String)> {
        let argv = |l: &Listed| String::from_utf8_lossy(&l.meta.argv[0]).into_owned();
        listed.iter().map(|l| (argv(l), l.meta.key.hex())).collect()
    }

    /// A shard's index walked beside its sorted names: every entry whose
    /// file still has its record's stamp is listed from the index (which
    /// here says `index N`, where the file says `file N`), whatever
    /// records of removed entries lie between, and every other entry (no
    /// record, or a record of another file) from its file.
    #[test]
    fn each_entry_gets_its_own_record_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::FileStore::new(dir.path().to_path_buf());
        let present = [2u8, 4, 6, 8, 10, 12, 14];
        for i in present {
            let mut meta = Meta::blank(key(i));
            meta.argv = vec![ByteBuf::from(format!("file {i}").into_bytes())];
            store.begin(&key(i)).unwrap().commit(&meta).unwrap();
        }
        let root = dir.path().join("entries");
        let index_dir = dir.path().join("index");
        let (mut buf, mut packing) = (Vec::new(), Vec::new());
        let mut stamps = std::collections::HashMap::new();
        let mut index = Builder::new(Vec::new());
        // Records of removed entries (1, 3, 5, 9, 15), of entries as they
        // are (2, 4, 8, 14), of 10 as if it were 8's file; none of 6 or 12.
        for i in 1u8..=15 {
            let path = root.join("ab").join(key(i).hex());
            let (meta, stamp, cbor_len) = match File::open(&path) {
                Ok(file) => {
                    let (listed, stamp, cbor_len) =
                        read_entry(&file, &key(i), &mut buf, &mut packing).unwrap();
                    stamps.insert(i, stamp);
                    (listed.meta, stamp, cbor_len)
                }
                Err(_) => {
                    let stamp = Stamp {
                        dev: 1,
                        ino: u64::from(i),
                        size: 9,
                        mtime: (1, 0),
                        ctime: (1, 0),
                    };
                    (Meta::blank(key(i)), stamp, 9)
                }
            };
            let stamp = if i == 10 { stamps[&8] } else { stamp };
            if [6, 12].contains(&i) {
                continue;
            }
            let mut meta = meta;
            meta.argv = vec![ByteBuf::from(format!("index {i}").into_bytes())];
            packing.clear();
            packed::pack(&meta, &mut packing);
            index.push(&key(i).0, &stamp, cbor_len, &packing);
        }
        index.write(&index_dir.join("ab"));
        let want: Vec<(String, String)> = present
            .iter()
            .map(|&i| {
                let from = if [2, 4, 8, 14].contains(&i) {
                    "index"
                } else {
                    "file"
                };
                (format!("{from} {i}"), key(i).hex())
            })
            .collect();
        let mut scratch = Scratch::default();
        // Twice, the second time through the index the first rewrote
        // (without the records not used) and with the buffers reused.
        for _ in 0..2 {
            let name = std::ffi::OsStr::new("ab");
            let listed = list(&root, &index_dir, name, None, UNIX_EPOCH, &mut scratch).unwrap();
            assert_eq!(argvs(&listed), want);
        }
    }
}
