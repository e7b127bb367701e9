//! The per-user cache of file content hashes, so a key over an unchanged tree
//! reads no file content (git's index trick).
//!
//! A hash is remembered by the file's (device, inode, size, mtime ns, ctime
//! ns). Nothing a user can do to a file keeps its ctime, so a matching stamp
//! means the content is the one hashed — provided the hash was taken when the
//! stamp was already settled. Hence the "racily clean" guard: a file whose
//! mtime or ctime is not older than [`RACY_MARGIN`](crate::stamp::RACY_MARGIN) before the walk began is
//! hashed but never remembered (a write later in the same timestamp tick
//! could keep the stamp).
//!
//! Layout: one shard file per `--input` (a walk's whole file set, replaced
//! when it changes) under the user's own cache dir (`~/.cache/cachier/hashes`,
//! 0700, files 0600), never in a shared backend. A shard is fixed-size
//! records sorted by (device, inode) behind a header and followed by a BLAKE3
//! of all of it: looked up by binary search without parsing, written whole
//! to a temp file and renamed (concurrent writers: the last rename wins and
//! the loser's hashes are just computed again next time; a reader never sees
//! half a file). A shard that fails its checks, or that another user owns
//! or could have written (see `private`), is treated as empty and replaced. Hashes learnt later are appended to the shard's delta (see
//! `delta`) until it holds an eighth as many records as the shard, or an
//! eighth of the shard's records no longer match any file; then the shard is
//! rewritten whole. Shards are bounded in number and total size, oldest
//! (with its delta) removed first.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod delta;
mod stamp;

pub use stamp::Stamp;

/// At most this many shards, and this many bytes over all of them.
const MAX_SHARDS: usize = 256;
const MAX_BYTES: u64 = 256 << 20;
/// A walk with more files than this is not remembered (~80 MiB of shard).
const MAX_RECORDS: usize = 1 << 20;
const MAGIC: &[u8; 8] = b"cachierH";
const VERSION: u32 = 1;
const HEADER: usize = 16;
const RECORD: usize = 80;
const TRAILER: usize = 32;

/// One shard: remembered hashes, sorted by (device, inode), and its delta.
pub struct Shard {
    path: Option<PathBuf>,
    bytes: Vec<u8>,
    count: usize,
    /// The delta's records (sorted by device and inode), when it extends
    /// this shard.
    delta: Vec<(Stamp, [u8; 32])>,
}

impl Shard {
    /// The shard called `name` (a hex digest naming the walk), or an empty
    /// one when it is missing or damaged. Never fails: a cache that cannot
    /// be read is a cache that is cold.
    pub fn load(name: &str) -> Shard {
        let path = dir().map(|d| d.join(name));
        let bytes = path
            .as_ref()
            .and_then(|p| crate::private::read(p))
            .unwrap_or_default();
        let count = valid(&bytes).unwrap_or(0);
        let delta = match (&path, base_id(&bytes, count)) {
            (Some(p), Some(id)) => delta::load(&delta::path_of(p), &id),
            _ => Vec::new(),
        };
        Shard {
            path,
            bytes,
            count,
            delta,
        }
    }

    /// Records in the shard and its delta (the indices [`Shard::find`] gives).
    pub fn len(&self) -> usize {
        self.count + self.delta.len()
    }

    /// Whether `adding` more records go to the delta rather than a rewrite.
    pub fn can_append(&self, adding: usize) -> bool {
        self.count > 0 && (self.delta.len() + adding) * 8 <= self.count
    }

    /// Add `records` (settled stamps only) to the shard's delta. Failures
    /// are ignored: the cache only saves work.
    pub fn append(&self, records: &[(Stamp, [u8; 32])]) {
        if let (Some(path), Some(id)) = (&self.path, base_id(&self.bytes, self.count)) {
            delta::append(&delta::path_of(path), &id, self.delta.is_empty(), records);
        }
    }

    /// The remembered hash of the content with this stamp.
    #[cfg(test)]
    pub fn get(&self, stamp: &Stamp) -> Option<[u8; 32]> {
        self.find(stamp).map(|(_, hash)| hash)
    }

    /// The same, with the record's index (distinct indices count the
    /// records a walk used). The search reads only (device, inode) until
    /// it lands: decoding every probed record cost more than the search.
    pub fn find(&self, stamp: &Stamp) -> Option<(usize, [u8; 32])> {
        let want = (stamp.dev, stamp.ino);
        let first = self.delta.partition_point(|(s, _)| (s.dev, s.ino) < want);
        for (j, (s, hash)) in self.delta.iter().enumerate().skip(first) {
            if (s.dev, s.ino) != want {
                break;
            }
            if s == stamp {
                return Some((self.count + j, *hash));
            }
        }
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let at = HEADER + mid * RECORD;
            let word = |i: usize| {
                u64::from_le_bytes(self.bytes[at + i..at + i + 8].try_into().unwrap_or([0; 8]))
            };
            match (word(0), word(8)).cmp(&want) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let (s, hash) = self.record(mid);
                    return (s == *stamp).then_some((mid, hash));
                }
            }
        }
        None
    }

    fn record(&self, i: usize) -> (Stamp, [u8; 32]) {
        let at = HEADER + i * RECORD;
        stamp::decode(&self.bytes[at..at + RECORD])
    }

    /// Replace the shard with `records`. Failures are ignored: the cache
    /// only saves work, and the key never depends on it.
    pub fn save(&self, mut records: Vec<(Stamp, [u8; 32])>) {
        let Some(path) = &self.path else { return };
        records.sort_unstable_by_key(|(s, _)| (s.dev, s.ino));
        records.dedup_by_key(|(s, _)| (s.dev, s.ino));
        if records.len() > MAX_RECORDS {
            return;
        }
        let mut bytes = Vec::with_capacity(HEADER + records.len() * RECORD + TRAILER);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(records.len() as u32).to_le_bytes());
        for (stamp, hash) in &records {
            stamp::encode(stamp, hash, &mut bytes);
        }
        let sum = *blake3::hash(&bytes).as_bytes();
        bytes.extend_from_slice(&sum);
        if crate::store::kit::write_whole(path, ".tmp", &bytes).is_ok() {
            // It extended the shard just replaced: never read again.
            let _ = std::fs::remove_file(delta::path_of(path));
        }
        if let Some(dir) = path.parent() {
            evict(dir, path);
        }
    }
}

/// How many records the shard called `name` holds, by its size alone (one
/// `stat`; 0 when there is none).
pub fn records(name: &str) -> usize {
    dir()
        .and_then(|d| std::fs::metadata(d.join(name)).ok())
        .and_then(|m| usize::try_from(m.len()).ok())
        .map_or(0, |len| len.saturating_sub(HEADER + TRAILER) / RECORD)
}

/// The BLAKE3 trailer of a well-formed shard of `count` records: what its
/// delta names.
fn base_id(bytes: &[u8], count: usize) -> Option<[u8; 32]> {
    (count > 0)
        .then(|| {
            bytes
                .get(bytes.len().checked_sub(TRAILER)?..)?
                .try_into()
                .ok()
        })
        .flatten()
}

/// The record count of a well-formed shard.
fn valid(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < HEADER + TRAILER || &bytes[..8] != MAGIC {
        return None;
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
    let count = u32::from_le_bytes(bytes[12..16].try_into().ok()?) as usize;
    let body = HEADER.checked_add(count.checked_mul(RECORD)?)?;
    if version != VERSION || bytes.len() != body + TRAILER {
        return None;
    }
    // A big shard's check on every core: it is most of loading one.
    let mut sum = blake3::Hasher::new();
    if body >= 1 << 20 {
        sum.update_rayon(&bytes[..body]);
    } else {
        sum.update(&bytes[..body]);
    }
    (sum.finalize().as_bytes() == &bytes[body..]).then_some(count)
}

/// `~/.cache/cachier/hashes` (honouring `XDG_CACHE_HOME`): per user and per
/// machine, whatever `--cache-dir` or the backend say.
pub fn dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.cache_dir().join("cachier").join("hashes"))
}

/// Keep the shards within [`MAX_SHARDS`] and [`MAX_BYTES`], oldest first out
/// (never `keep`, just written), and drop temp files a killed writer left.
fn evict(dir: &Path, keep: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut shards: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    let mut deltas: u64 = 0;
    for entry in list.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".tmp") {
            if now.duration_since(modified).unwrap_or_default() > Duration::from_secs(3600) {
                let _ = std::fs::remove_file(&path);
            }
        } else if delta::is_delta(&name) {
            // Counted with the shards; one whose shard is gone goes too.
            let base = path.with_extension("");
            if base.exists() || std::fs::remove_file(&path).is_err() {
                deltas += meta.len();
            }
        } else if path != keep {
            shards.push((modified, meta.len(), path));
        }
    }
    let kept_len = std::fs::metadata(keep).map_or(0, |m| m.len()) + deltas;
    let mut total: u64 = kept_len + shards.iter().map(|s| s.1).sum::<u64>();
    let mut count = shards.len() + 1;
    shards.sort();
    for (_, len, path) in shards {
        if count <= MAX_SHARDS && total <= MAX_BYTES {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            count -= 1;
            total = total.saturating_sub(len);
            let delta = delta::path_of(&path);
            if let Ok(meta) = std::fs::metadata(&delta)
                && std::fs::remove_file(&delta).is_ok()
            {
                total = total.saturating_sub(meta.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64, secs: i64) -> Stamp {
        Stamp {
            dev: 1,
            ino,
            size: 10,
            mtime: (secs, 5),
            ctime: (secs, 7),
        }
    }

    #[test]
    fn a_saved_shard_answers_exact_stamps_only() {
        let tmp = tempfile::tempdir().unwrap();
        let shard = Shard {
            path: Some(tmp.path().join("s")),
            bytes: Vec::new(),
            count: 0,
            delta: Vec::new(),
        };
        let records: Vec<_> = (0..100)
            .rev()
            .map(|i| (stamp(i, 1000), [i as u8; 32]))
            .collect();
        shard.save(records);
        let bytes = std::fs::read(tmp.path().join("s")).unwrap();
        let loaded = Shard {
            path: None,
            count: valid(&bytes).unwrap(),
            bytes,
            delta: Vec::new(),
        };
        assert_eq!(loaded.len(), 100);
        assert_eq!(loaded.get(&stamp(42, 1000)), Some([42; 32]));
        assert_eq!(loaded.get(&stamp(100, 1000)), None);
        let mut changed = stamp(42, 1000);
        changed.ctime.1 += 1;
        assert_eq!(loaded.get(&changed), None, "a new ctime is a new content");
    }

    #[test]
    fn a_damaged_shard_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        let shard = Shard {
            path: Some(path.clone()),
            bytes: Vec::new(),
            count: 0,
            delta: Vec::new(),
        };
        shard.save(vec![(stamp(1, 1000), [1; 32])]);
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(valid(&bytes).is_some());
        bytes[HEADER + 3] ^= 1;
        assert_eq!(valid(&bytes), None);
        bytes.truncate(40);
        assert_eq!(valid(&bytes), None);
        assert_eq!(valid(b"cachierH\x01\0\0\0\xff\xff\xff\xff"), None);
    }

    #[test]
    fn only_settled_files_are_remembered() {
        let began = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(stamp(1, 1_000_000 - 3).settled(began));
        // Changed within the margin: a later write in the same tick could
        // keep the stamp.
        assert!(!stamp(1, 1_000_000 - 1).settled(began));
        assert!(!stamp(1, 1_000_000).settled(began));
        let mut s = stamp(1, 1_000_000 - 3);
        s.ctime = (1_000_000 - 1, 0);
        assert!(!s.settled(began), "ctime counts too (touch -d keeps mtime)");
        s.ctime = (1_000_000 + 50, 0);
        assert!(!s.settled(began), "a time in the future");
    }
}
