//! Single-flight on one machine: a per-key lock file held with `flock`.
//! Shared by the stores that live on a local disk (file, SQLite).
//!
//! The owner holds an exclusive lock for the whole run, so the kernel frees
//! it the instant the owner dies. Waiters block on a shared lock and all wake
//! together when it goes. The owner unlinks the file before unlocking; a
//! claimer that locked an unlinked file retries on the new one.
use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::store::kit::open_private;
use crate::store::{Claim, Holder, Lease};

struct FileLease {
    file: File,
    path: PathBuf,
}

impl Lease for FileLease {}

impl Drop for FileLease {
    fn drop(&mut self) {
        // The path still names our file: nobody can replace it while we hold
        // the lock, since claimers only ever open the existing file.
        if still_linked(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        // Closing `file` (after this) releases the lock.
    }
}

pub(crate) fn claim(path: &Path, me: &Holder) -> Result<Claim> {
    loop {
        // std opens with O_CLOEXEC: the command we run never inherits the lock.
        let mut file = open_private(path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                if !still_linked(&file, path) {
                    continue;
                }
                file.set_len(0)?;
                file.write_all(format!("{}\t{}\n", me.host, me.pid).as_bytes())?;
                return Ok(Claim::Owner(Box::new(FileLease {
                    file,
                    path: path.to_path_buf(),
                })));
            }
            Err(TryLockError::WouldBlock) => return Ok(Claim::Busy(read_holder(&mut file))),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
}

/// Block until the lock at `path` is free; `false` when `timeout` passes first.
pub(crate) fn wait(path: &Path, timeout: Option<Duration>) -> Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot open lock file {}", path.display()));
        }
    };
    let Some(timeout) = timeout else {
        file.lock_shared().context("cannot wait on the lock")?;
        return Ok(true);
    };
    let (tx, rx) = mpsc::channel();
    // The thread outlives a timeout harmlessly: a shared lock on a released
    // claim blocks nobody, and it ends with the process.
    std::thread::spawn(move || {
        let _ = tx.send(file.lock_shared().map(|()| file));
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result.map(|_| true).context("cannot wait on the lock"),
        Err(_) => Ok(false),
    }
}

fn still_linked(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let (host, pid) = text.trim_end().split_once('\t')?;
    Some(Holder {
        host: host.to_string(),
        pid: pid.parse().ok()?,
    })
}

/// Remove the lock files in `dir` that no living owner holds; how many went.
pub(crate) fn clear_dead(dir: &Path) -> Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut wiped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        // A claim whose lock we can take has no living owner.
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
            wiped += 1;
        }
    }
    Ok(wiped)
}
