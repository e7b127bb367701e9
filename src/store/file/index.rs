//! The listing index of the file store: per shard of entries, each entry's
//! metadata as read from its file, with the stamp (device, inode, size,
//! mtime ns, ctime ns) that file had, so a scan stats an entry instead of opening
//! and reading it.
//!
//! (The metadata is packed, see packed.rs: decoding CBOR cost more than
//! the stat.) A cache, never the truth. A record is used only when the entry's file
//! has exactly its stamp now; nothing a user or cachier does to a file keeps
//! its ctime (a rewrite is a new inode, `touch -d` and a hit's atime change
//! the ctime), and a record is only made of a file whose mtime and ctime lie
//! [`RACY_MARGIN`](crate::stamp::RACY_MARGIN) before the scan began, so a write later in the same
//! timestamp tick cannot hide behind an unchanged stamp. The metadata is
//! decoded and checked against the key and the file's size as if read from
//! the file (its format, key, lengths, and the file's size). A shard index that fails its checksum or its bounds, or that
//! another user owns or could have written (see `private`), is ignored and
//! replaced. Written whole to a temp file (0600, in the 0700 index dir) and
//! renamed: concurrent scans each write a whole index, the last rename wins.
//!
//! ```text
//! <dir>/index/<2 hex>  = MAGIC version:u32 count:u32 record* blake3:32
//! record = key:32 dev:u64 ino:u64 size:u64 mtime:(i64,u32) ctime:(i64,u32)
//!          cbor_len:u32 len:u32 meta:packed[len]   (cbor_len: in the file)
//! ```
//! (integers little-endian; records in key order, keys unique).
use std::path::Path;

pub use crate::stamp::Stamp;

const MAGIC: &[u8; 8] = b"cachierL";
const VERSION: u32 = 2;
const HEADER: usize = 16;
const HEAD: usize = 32 + Stamp::LEN + 8;
const TRAILER: usize = 32;

/// One record of a loaded index.
pub struct Record<'a> {
    /// Where it starts in its index ([`Index::record`]).
    pub at: usize,
    pub stamp: Stamp,
    /// The length of the metadata's CBOR in the entry file.
    pub cbor_len: u64,
    pub meta: &'a [u8],
}

/// A shard's index as read: its records, in key order (empty when the
/// file is missing, damaged or not this user's own).
pub struct Index {
    bytes: Vec<u8>,
    /// Where each record starts in `bytes`.
    starts: Vec<usize>,
}

impl Index {
    /// The index at `path`, read into `bytes` (a buffer to reuse: see
    /// [`Index::into_bytes`]).
    pub fn load(path: &Path, mut bytes: Vec<u8>) -> Index {
        crate::private::read_into(path, &mut bytes);
        match parse(&bytes) {
            Some(starts) => Index { bytes, starts },
            None => Index::empty(bytes),
        }
    }

    pub fn empty(mut bytes: Vec<u8>) -> Index {
        bytes.clear();
        Index {
            bytes,
            starts: Vec::new(),
        }
    }

    /// Its buffer, for the next load.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// A reader of its records by keys asked in increasing order.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor {
            index: self,
            next: 0,
        }
    }

    /// The record starting at `at`, as [`Index::find`] gave it.
    pub fn record(&self, at: usize) -> Record<'_> {
        record(&self.bytes, at)
    }
}

/// Finds the records of keys asked in increasing order (as a shard's
/// sorted names come) by walking the index forward once, where a binary
/// search per key cost more: records of keys not asked (entries removed)
/// are passed over, keys without a record (entries added) find none.
pub struct Cursor<'a> {
    index: &'a Index,
    /// The first record not passed yet.
    next: usize,
}

impl<'a> Cursor<'a> {
    /// The record of `key`, if any; `key` must come after every key asked
    /// before, or a record passed over is not found.
    pub fn find(&mut self, key: &[u8; 32]) -> Option<Record<'a>> {
        let Index { bytes, starts } = self.index;
        while let Some(&at) = starts.get(self.next) {
            match bytes[at..at + 32].cmp(key) {
                std::cmp::Ordering::Less => self.next += 1,
                std::cmp::Ordering::Equal => {
                    self.next += 1;
                    return Some(record(bytes, at));
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

/// The record at `at` (bounds checked by [`parse`]).
fn record(b: &[u8], at: usize) -> Record<'_> {
    let u32_at = |i: usize| u32::from_le_bytes(b[at + i..at + i + 4].try_into().unwrap_or([0; 4]));
    let len = u32_at(HEAD - 4) as usize;
    Record {
        at,
        stamp: Stamp::decode(&b[at + 32..]),
        cbor_len: u64::from(u32_at(HEAD - 8)),
        meta: &b[at + HEAD..at + HEAD + len],
    }
}

/// Where each record starts, if `bytes` is a sound index.
fn parse(bytes: &[u8]) -> Option<Vec<usize>> {
    if bytes.len() < HEADER + TRAILER || &bytes[..8] != MAGIC {
        return None;
    }
    let body = bytes.len() - TRAILER;
    if blake3::hash(&bytes[..body]).as_bytes() != &bytes[body..] {
        return None;
    }
    let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
    if word(8) != VERSION {
        return None;
    }
    let count = word(12) as usize;
    let mut starts = Vec::with_capacity(count.min(body / HEAD));
    let mut at = HEADER;
    while at < body {
        if body - at < HEAD {
            return None;
        }
        let len = word(at + HEAD - 4) as usize;
        if body - at - HEAD < len {
            return None;
        }
        if let Some(&last) = starts.last()
            && bytes[last..last + 32] >= bytes[at..at + 32]
        {
            return None;
        }
        starts.push(at);
        at += HEAD + len;
    }
    (starts.len() == count).then_some(starts)
}

/// A shard's next index, built in key order as the shard is scanned.
pub struct Builder {
    bytes: Vec<u8>,
    count: u32,
    /// The last key pushed: keys must increase, or the index is unreadable.
    last: Option<[u8; 32]>,
}

impl Builder {
    /// An empty index, built in `bytes`.
    pub fn new(mut bytes: Vec<u8>) -> Builder {
        bytes.clear();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        Builder {
            bytes,
            count: 0,
            last: None,
        }
    }

    /// Add a record; keys must come in increasing order.
    pub fn push(&mut self, key: &[u8; 32], stamp: &Stamp, cbor_len: u64, meta: &[u8]) {
        let (Ok(cbor_len), Ok(len)) = (u32::try_from(cbor_len), u32::try_from(meta.len())) else {
            return;
        };
        if self.last.is_some_and(|last| last >= *key) {
            return;
        }
        self.last = Some(*key);
        let b = &mut self.bytes;
        b.extend_from_slice(key);
        stamp.encode(b);
        b.extend_from_slice(&cbor_len.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(meta);
        self.count += 1;
    }

    /// Replace the index at `path` (in a 0700 dir it creates) with this one,
    /// or with none if it is empty. Failures are ignored: the index only
    /// saves work.
    pub fn write(&mut self, path: &Path) {
        if self.count == 0 {
            let _ = std::fs::remove_file(path);
            return;
        }
        self.bytes[12..16].copy_from_slice(&self.count.to_le_bytes());
        let check = blake3::hash(&self.bytes);
        self.bytes.extend_from_slice(check.as_bytes());
        let _ = crate::store::kit::write_whole(path, ".index", &self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u64) -> Stamp {
        Stamp {
            dev: n + 7,
            ino: n,
            size: n * 2,
            mtime: (n as i64, 3),
            ctime: (n as i64 + 1, 4),
        }
    }

    /// What is written reads back; any damage reads as no index at all.
    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index").join("ab");
        let mut b = Builder::new(Vec::new());
        b.push(&[1; 32], &stamp(1), 5, b"one");
        b.push(&[2; 32], &stamp(2), 6, b"");
        b.write(&path);
        let index = Index::load(&path, Vec::new());
        assert_eq!(index.len(), 2);
        let r = index.cursor().find(&[1; 32]).unwrap();
        assert_eq!((r.stamp, r.cbor_len, r.meta), (stamp(1), 5, &b"one"[..]));
        assert!(index.cursor().find(&[3; 32]).is_none());
        let good = std::fs::read(&path).unwrap();
        for i in [0, 9, 13, 20, 60, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 1;
            assert!(parse(&bad).is_none(), "byte {i} flipped");
        }
        assert!(parse(&good[..good.len() - 1]).is_none());
        // A key out of order is not pushed.
        let mut b = Builder::new(Vec::new());
        b.push(&[2; 32], &stamp(2), 0, b"");
        b.push(&[1; 32], &stamp(1), 0, b"");
        b.push(&[2; 32], &stamp(2), 0, b"");
        b.write(&path);
        assert_eq!(Index::load(&path, Vec::new()).len(), 1);
        // Keys out of order are refused, even with a sound checksum.
        let mut b = Builder::new(Vec::new());
        b.push(&[1; 32], &stamp(1), 0, b"");
        b.push(&[2; 32], &stamp(2), 0, b"");
        b.write(&path);
        let mut bad = std::fs::read(&path).unwrap();
        bad[HEADER..HEADER + 32].copy_from_slice(&[3; 32]);
        let body = bad.len() - TRAILER;
        let sum = *blake3::hash(&bad[..body]).as_bytes();
        bad[body..].copy_from_slice(&sum);
        assert!(parse(&bad).is_none());
    }

    /// Keys asked in order find exactly their own records, past records of
    /// keys never asked and keys that have none, at either end.
    #[test]
    fn cursor_finds_each_key_asked_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index").join("ab");
        let mut b = Builder::new(Vec::new());
        for n in [2u8, 4, 5, 6, 9] {
            b.push(&[n; 32], &stamp(n.into()), n.into(), &[n]);
        }
        b.write(&path);
        let index = Index::load(&path, Vec::new());
        assert_eq!(index.len(), 5);
        for asked in [
            vec![2u8, 4, 5, 6, 9],
            vec![0, 1, 2, 3, 5, 7, 8, 9, 10],
            vec![4, 6],
            vec![9],
            vec![1, 3, 7, 8, 10],
            vec![],
        ] {
            let mut cursor = index.cursor();
            for n in &asked {
                let found = cursor.find(&[*n; 32]);
                let want = [2, 4, 5, 6, 9].contains(n);
                assert_eq!(found.is_some(), want, "{n} of {asked:?}");
                if let Some(r) = found {
                    assert_eq!((r.stamp, r.cbor_len), (stamp((*n).into()), u64::from(*n)));
                    assert_eq!(r.meta, &[*n][..]);
                    assert_eq!(index.record(r.at).meta, &[*n][..]);
                }
            }
        }
        assert!(Index::empty(Vec::new()).cursor().find(&[1; 32]).is_none());
    }
}
