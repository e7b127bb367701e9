//! Content hashes of many files: remembered ones from the hash cache, the
//! rest read on as many threads as the machine has.
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use super::hashcache::{Shard, Stamp};

/// A file to hash, as a walk found it.
pub struct Found {
    pub path: PathBuf,
    pub stamp: Stamp,
}

/// Below these, reading the files costs less than reading and rewriting a
/// shard: the cache is left alone.
const CACHE_MIN_FILES: usize = 32;
const CACHE_MIN_BYTES: u64 = 1 << 20;
/// A file this large is hashed on several threads.
const BIG: u64 = 8 << 20;

/// Why a file could not be hashed: its path and the error.
pub struct Unreadable(pub PathBuf, pub std::io::Error);

/// The content hash of every file, in order. `shard` names the cache shard
/// for this set of files (asked only when the set is big enough for the
/// cache); `began` is when the walk that stat-ed them began.
pub fn hash_all(
    files: &[Found],
    shard: impl FnOnce() -> String,
    began: SystemTime,
) -> Result<Vec<[u8; 32]>, Unreadable> {
    let bytes: u64 = files.iter().map(|f| f.stamp.size).sum();
    let shard =
        (files.len() >= CACHE_MIN_FILES || bytes >= CACHE_MIN_BYTES).then(|| Shard::load(&shard()));
    // Which shard records this walk used: when they are all of them and
    // nothing new is settled, the shard stays as it is, unread and unsorted.
    let mut used = vec![false; shard.as_ref().map_or(0, Shard::len)];
    let mut hashes: Vec<Option<[u8; 32]>> = match &shard {
        Some(s) => files
            .iter()
            .map(|f| {
                let (at, hash) = s.find(&f.stamp)?;
                used[at] = true;
                Some(hash)
            })
            .collect(),
        None => vec![None; files.len()],
    };
    let todo: Vec<usize> = (0..files.len()).filter(|&i| hashes[i].is_none()).collect();
    for (i, hash) in hash_files(files, &todo)? {
        hashes[i] = Some(hash);
    }
    let hashes: Vec<[u8; 32]> = hashes.into_iter().map(|h| h.unwrap_or_default()).collect();
    if let Some(shard) = shard {
        remember(&shard, files, &hashes, &todo, &used, began);
    }
    Ok(hashes)
}

/// Keep what this walk learnt. An unchanged tree writes nothing; a few new
/// settled hashes are appended to the shard's delta; the shard is rewritten
/// with exactly this walk's settled files when its delta would grow past an
/// eighth of it, or when over an eighth of its records matched no file (an
/// edited or removed file's record never matches again: until then it only
/// costs space).
fn remember(
    shard: &Shard,
    files: &[Found],
    hashes: &[[u8; 32]],
    todo: &[usize],
    used: &[bool],
    began: SystemTime,
) {
    let fresh: Vec<(Stamp, [u8; 32])> = todo
        .iter()
        .filter(|&&i| files[i].stamp.settled(began))
        .map(|&i| (files[i].stamp, hashes[i]))
        .collect();
    let stale = used.iter().filter(|u| !**u).count();
    let stale_ok = stale * 8 <= shard.len();
    if fresh.is_empty() && stale_ok {
        return;
    }
    if stale_ok && shard.can_append(fresh.len()) {
        shard.append(&fresh);
        return;
    }
    let records: Vec<(Stamp, [u8; 32])> = files
        .iter()
        .zip(hashes)
        .filter(|(f, _)| f.stamp.settled(began))
        .map(|(f, h)| (f.stamp, *h))
        .collect();
    shard.save(records);
}

/// Hash `files[i]` for each `i` in `todo`, on up to one thread per core.
fn hash_files(files: &[Found], todo: &[usize]) -> Result<Vec<(usize, [u8; 32])>, Unreadable> {
    // Asking for the core count reads cgroup files: not for one file (a
    // script on every hit).
    let threads = match todo.len() {
        0 | 1 => 1,
        n => std::thread::available_parallelism()
            .map_or(1, |c| c.get())
            .min(n)
            .min(16),
    };
    if threads <= 1 {
        return todo
            .iter()
            .map(|&i| Ok((i, hash_file(&files[i].path)?)))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::with_capacity(todo.len()));
    let failed: Mutex<Option<Unreadable>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(n) else { break };
                    match hash_file(&files[i].path) {
                        Ok(h) => mine.push((i, h)),
                        Err(e) => {
                            next.store(todo.len(), Ordering::Relaxed);
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
                if let Ok(mut out) = out.lock() {
                    out.append(&mut mine);
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(out.into_inner().unwrap_or_default())
}

/// The BLAKE3 of one file's content. Opened without blocking, and refused
/// unless it is a regular file, so a FIFO swapped in cannot hang the key.
pub fn hash_file(path: &std::path::Path) -> Result<[u8; 32], Unreadable> {
    let fail = |e| Unreadable(path.to_path_buf(), e);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(fail(std::io::Error::other("not a regular file")));
    }
    let mut hasher = blake3::Hasher::new();
    if meta.len() >= BIG {
        read_into(&mut file, &mut hasher, 1 << 20, true).map_err(fail)?;
    } else {
        // A buffer no bigger than the file (and one byte to see its end):
        // zeroing 64 KiB for a 20-byte script was most of what keying the
        // program cost on a hit, and of the CPU of a cold walk.
        let fits = usize::try_from(meta.len()).map_or(usize::MAX, |n| n.saturating_add(1));
        read_into(&mut file, &mut hasher, fits.min(64 << 10), false).map_err(fail)?;
    }
    Ok(*hasher.finalize().as_bytes())
}

fn read_into(
    file: &mut File,
    hasher: &mut blake3::Hasher,
    chunk: usize,
    parallel: bool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; chunk];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if parallel {
            hasher.update_rayon(&buf[..n]);
        } else {
            hasher.update(&buf[..n]);
        }
    }
}
