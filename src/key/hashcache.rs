//! The per-user cache of file content hashes, so a key over an unchanged tree
//! reads no file content (git's index trick).
//!
//! A hash is remembered by the file's (device, inode, size, mtime ns, ctime
//! ns). Nothing a user can do to a file keeps its ctime, so a matching stamp
//! means the content is the one hashed — provided the hash was taken when the
//! stamp was already settled. Hence the "racily clean" guard: a file whose
//! mtime or ctime is not older than [`RACY_MARGIN`] before the walk began is
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
//! half a file). A shard that fails its checks is treated as empty and
//! replaced. Shards are bounded in number and total size, oldest removed first.
use std::fs::Metadata;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Files changed this recently (before the walk began) are not remembered.
/// It covers 1 s and 2 s filesystem timestamps, the kernel's coarse clock
/// and a little clock skew on network filesystems.
pub const RACY_MARGIN: Duration = Duration::from_secs(2);
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

/// What identifies one version of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        let ns = |n: i64| u32::try_from(n).unwrap_or(0);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), ns(meta.mtime_nsec())),
            ctime: (meta.ctime(), ns(meta.ctime_nsec())),
        }
    }

    /// The same from a `stat` result (field types differ between targets).
    #[allow(clippy::useless_conversion)]
    pub fn of_stat(st: &rustix::fs::Stat) -> Stamp {
        let ns = |n| u32::try_from(n).unwrap_or(0);
        Stamp {
            // (`dev_t` is i32 on macOS: its bits, as a number.)
            #[allow(clippy::unnecessary_cast)]
            dev: st.st_dev as u64,
            ino: u64::from(st.st_ino),
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: (i64::from(st.st_mtime), ns(st.st_mtime_nsec)),
            ctime: (i64::from(st.st_ctime), ns(st.st_ctime_nsec)),
        }
    }

    /// Whether a hash of this file, taken after `began`, may be remembered:
    /// both its times lie at least [`RACY_MARGIN`] before `began`.
    pub fn settled(&self, began: SystemTime) -> bool {
        let Some(limit) = began
            .checked_sub(RACY_MARGIN)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        else {
            return false;
        };
        let limit = (
            i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
            limit.subsec_nanos(),
        );
        self.mtime < limit && self.ctime < limit
    }

    fn encode(&self, hash: &[u8; 32], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dev.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime.0.to_le_bytes());
        out.extend_from_slice(&self.mtime.1.to_le_bytes());
        out.extend_from_slice(&self.ctime.0.to_le_bytes());
        out.extend_from_slice(&self.ctime.1.to_le_bytes());
        out.extend_from_slice(hash);
    }

    fn decode(b: &[u8]) -> (Stamp, [u8; 32]) {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        let stamp = Stamp {
            dev: u64_at(0),
            ino: u64_at(8),
            size: u64_at(16),
            mtime: (u64_at(24) as i64, u32_at(32)),
            ctime: (u64_at(36) as i64, u32_at(44)),
        };
        let hash = b[48..80].try_into().unwrap_or([0; 32]);
        (stamp, hash)
    }
}

/// One shard: remembered hashes, sorted by (device, inode).
pub struct Shard {
    path: Option<PathBuf>,
    bytes: Vec<u8>,
    count: usize,
}

impl Shard {
    /// The shard called `name` (a hex digest naming the walk), or an empty
    /// one when it is missing or damaged. Never fails: a cache that cannot
    /// be read is a cache that is cold.
    pub fn load(name: &str) -> Shard {
        let path = dir().map(|d| d.join(name));
        let bytes = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default();
        let count = valid(&bytes).unwrap_or(0);
        Shard { path, bytes, count }
    }

    pub fn len(&self) -> usize {
        self.count
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
        Stamp::decode(&self.bytes[at..at + RECORD])
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
            stamp.encode(hash, &mut bytes);
        }
        let sum = *blake3::hash(&bytes).as_bytes();
        bytes.extend_from_slice(&sum);
        let _ = write_whole(path, &bytes);
        if let Some(dir) = path.parent() {
            evict(dir, path);
        }
    }
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

fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // tempfile creates 0600 files.
    let mut tmp = tempfile::Builder::new().prefix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Keep the shards within [`MAX_SHARDS`] and [`MAX_BYTES`], oldest first out
/// (never `keep`, just written), and drop temp files a killed writer left.
fn evict(dir: &Path, keep: &Path) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    let mut shards: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in list.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        if entry.file_name().to_string_lossy().starts_with(".tmp") {
            if now.duration_since(modified).unwrap_or_default() > Duration::from_secs(3600) {
                let _ = std::fs::remove_file(&path);
            }
        } else if path != keep {
            shards.push((modified, meta.len(), path));
        }
    }
    let kept_len = std::fs::metadata(keep).map_or(0, |m| m.len());
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
