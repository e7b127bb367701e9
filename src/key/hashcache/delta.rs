//! A shard's delta: hashes learnt since the shard was written, appended
//! (`<shard>.delta`) instead of rewriting the whole shard, so one edited
//! file in a tree of 100,000 costs a record, not 8 MB.
//!
//! Layout: a header (magic and the BLAKE3 trailer of the shard it extends:
//! after the shard is replaced, its old delta is ignored), then records of
//! a stamp and hash with an 8-byte BLAKE3 check each. Writers append whole
//! batches with one `O_APPEND` write; a reader takes records up to the first
//! that fails its check (a torn write loses only what it was adding).
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{RECORD, Stamp, stamp};

const MAGIC: &[u8; 8] = b"cachierD";
const HEADER: usize = 8 + 32;
const CHECK: usize = 8;
const ENTRY: usize = RECORD + CHECK;

/// `<shard>.delta`.
pub fn path_of(shard: &Path) -> PathBuf {
    let mut name = shard.as_os_str().to_owned();
    name.push(".delta");
    PathBuf::from(name)
}

/// Whether `name` (a file in the hashes directory) is a delta.
pub fn is_delta(name: &str) -> bool {
    name.ends_with(".delta")
}

/// The records of the delta at `path` that extends the shard whose trailer
/// is `base`, sorted by (device, inode), in the order written within one;
/// empty when it is missing, damaged or extends another shard.
pub fn load(path: &Path, base: &[u8; 32]) -> Vec<(Stamp, [u8; 32])> {
    let Some(bytes) = crate::private::read(path) else {
        return Vec::new();
    };
    if bytes.len() < HEADER || &bytes[..8] != MAGIC || bytes[8..HEADER] != base[..] {
        return Vec::new();
    }
    let mut records: Vec<(Stamp, [u8; 32])> = bytes[HEADER..]
        .chunks_exact(ENTRY)
        .map_while(|e| (check(&e[..RECORD]) == e[RECORD..]).then(|| stamp::decode(&e[..RECORD])))
        .collect();
    records.sort_by_key(|(s, _)| (s.dev, s.ino));
    records
}

/// Append `records` to the delta at `path` of the shard whose trailer is
/// `base`; `fresh` says the delta on disk is not (yet) that shard's, so a
/// new one replaces it. Failures are ignored, as for the shard.
pub fn append(path: &Path, base: &[u8; 32], fresh: bool, records: &[(Stamp, [u8; 32])]) {
    let _ = try_append(path, base, fresh, records);
}

fn try_append(
    path: &Path,
    base: &[u8; 32],
    fresh: bool,
    records: &[(Stamp, [u8; 32])],
) -> std::io::Result<()> {
    if fresh {
        crate::store::kit::write_whole(path, ".tmp", &[&MAGIC[..], base].concat())?;
    }
    let mut out = Vec::with_capacity(records.len() * ENTRY);
    for (stamp, hash) in records {
        let at = out.len();
        stamp::encode(stamp, hash, &mut out);
        let sum = check(&out[at..]);
        out.extend_from_slice(&sum);
    }
    // One write: concurrent appenders interleave whole batches.
    OpenOptions::new()
        .append(true)
        .mode(0o600)
        .open(path)?
        .write_all(&out)
}

fn check(record: &[u8]) -> [u8; CHECK] {
    let mut sum = [0; CHECK];
    sum.copy_from_slice(&blake3::hash(record).as_bytes()[..CHECK]);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ino: u64) -> (Stamp, [u8; 32]) {
        let stamp = Stamp {
            dev: 1,
            ino,
            size: 3,
            mtime: (1000, 1),
            ctime: (1000, 2),
        };
        (stamp, [ino as u8; 32])
    }

    #[test]
    fn appended_records_load_back_for_their_shard_only() {
        let tmp = tempfile::tempdir().unwrap();
        let path = path_of(&tmp.path().join("s"));
        append(&path, &[7; 32], true, &[rec(5), rec(2)]);
        append(&path, &[7; 32], false, &[rec(9)]);
        let got: Vec<u64> = load(&path, &[7; 32]).iter().map(|r| r.0.ino).collect();
        assert_eq!(got, [2, 5, 9]);
        assert_eq!(load(&path, &[8; 32]), Vec::new(), "another shard's delta");
        // A new shard's delta replaces the old one.
        append(&path, &[8; 32], true, &[rec(4)]);
        assert_eq!(load(&path, &[8; 32]), vec![rec(4)]);
        assert_eq!(load(&path, &[7; 32]), Vec::new());
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_delta() {
        let tmp = tempfile::tempdir().unwrap();
        let path = path_of(&tmp.path().join("s"));
        append(&path, &[7; 32], true, &[rec(1), rec(2), rec(3)]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + ENTRY + 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&path, &[7; 32]), vec![rec(1)]);
        bytes.truncate(HEADER + ENTRY + 30);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(load(&path, &[7; 32]), vec![rec(1)]);
    }
}
