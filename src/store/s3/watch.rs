//! One poller per key per machine: the waiters of one machine on one key
//! elect one of them to poll the bucket (`claim.rs`), and the others watch
//! a local file, so a machine costs S3 the requests of one waiter however
//! many of its processes wait.
//!
//! The election is an exclusive `flock` on `s3-waits/<hash of the place and
//! key>` in the cache dir (0600 in a 0700 dir), taken without blocking:
//! whoever gets it polls. The file holds a wake count (16 hex digits): the
//! poller, when the entry changed or the claim went, adds one, unlinks the
//! file (still holding the lock) and lets go. The others read the count
//! through their open file every [`LOCAL_EVERY`] and wake when it differs
//! from what they first read; between reads they try the lock, so when a
//! poller gives up (its own deadline) or dies (SIGKILL: the kernel frees
//! the lock), another waiter polls within [`LOCAL_EVERY`]. A waiter that
//! locks a file already unlinked opens the path again. Nobody waits past
//! its own deadline. Without a usable cache dir (or `flock`), each waiter
//! polls for itself, as if alone.
use std::fs::{File, TryLockError};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::claim;
use super::store::Shared;
use crate::key::Key;
use crate::store::kit::{Deadline, make_dir, open_private};

/// How often a waiter that does not poll looks at the local file.
pub const LOCAL_EVERY: Duration = Duration::from_millis(5);

/// The directory of the wait files, under the cache dir.
const DIR: &str = "s3-waits";

/// Block until the entry of `key` changes from what this process last read
/// of it, or nobody holds a live claim on it; `false` on timeout.
pub fn wait(store: &Shared, key: &Key, timeout: Option<Duration>) -> Result<bool> {
    let deadline = Deadline::after(timeout);
    let path = path(store, key);
    let Some(mut watched) = Watched::open(&path) else {
        return claim::poll(store, key, deadline);
    };
    loop {
        if watched.woken() {
            return Ok(true);
        }
        match watched.file.try_lock() {
            Ok(()) => {
                // Read again under the lock: a poller that finished
                // counted before it let go.
                if watched.woken() {
                    return Ok(true);
                }
                if !still_linked(&watched.file, &path) {
                    // Its poller finished, and we read the count after.
                    match Watched::open(&path) {
                        Some(w) => watched = w,
                        None => return claim::poll(store, key, deadline),
                    }
                    continue;
                }
                let woke = claim::poll(store, key, deadline);
                if let Ok(true) = woke {
                    watched.wake(&path);
                }
                // Dropping the file lets go of the lock.
                return woke;
            }
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(_)) => return claim::poll(store, key, deadline),
        }
        if deadline.passed() {
            return Ok(false);
        }
        std::thread::sleep(deadline.left(LOCAL_EVERY));
    }
}

/// The wait file of `key` in this store.
fn path(store: &Shared, key: &Key) -> PathBuf {
    let config = store.lazy.config();
    let mut h = blake3::Hasher::new();
    h.update(config.place().as_bytes());
    h.update(b"\n");
    h.update(store.names.claim(key).as_bytes());
    config.notes.join(DIR).join(&h.finalize().to_hex()[..32])
}

/// A wait file as this waiter opened it, and the count it first read.
struct Watched {
    file: File,
    start: u64,
}

impl Watched {
    fn open(path: &Path) -> Option<Watched> {
        make_dir(path.parent()?).ok()?;
        // std opens with O_CLOEXEC: the command a waiter may end up
        // running never inherits the lock.
        let file = open_private(path).ok()?;
        let start = count(&file);
        Some(Watched { file, start })
    }

    fn woken(&self) -> bool {
        count(&self.file) != self.start
    }

    /// Wake the others (the lock held): count one more, then unlink the
    /// file, so the next wait on the key starts a new one.
    fn wake(&self, path: &Path) {
        let next = format!("{:016x}", self.start.wrapping_add(1));
        if self.file.write_all_at(next.as_bytes(), 0).is_ok() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The wake count in `file`: 0 when empty or unreadable. (A read torn by a
/// concurrent write may misread it; that wakes a waiter early, which then
/// looks at the store and waits again.)
fn count(file: &File) -> u64 {
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or(0)
}

fn still_linked(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Remove the wait files no waiter polls from (`clear --being-calculated`);
/// a waiter still watching one opens the path again when it next locks.
pub fn clear(store: &Shared) -> Result<u64> {
    crate::store::lock::clear_dead(&store.lazy.config().notes.join(DIR))
}
