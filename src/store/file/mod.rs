//! The `file` store: one file per entry under the cache directory.
//!
//! ```text
//! <dir>/entries/<2 hex>/<64 hex>   entry files (see format.rs)
//! <dir>/locks/<64 hex>.lock        single-flight claims (see lock.rs)
//! <dir>/stats/<namespace>.log      counter journals (see store/journal.rs)
//! <dir>/marks/<what>               rate limits of background clean-up
//! <dir>/index/<2 hex>              listing index of a shard (see index.rs)
//! <dir>/tmp/                       entries being written
//! ```
//! An entry's creation time is its file's mtime (so `touch -d` ages it); its
//! last hit is its atime, set explicitly on each hit. A dead owner is
//! noticed at once: the kernel drops its `flock`.
pub(crate) mod format;
mod index;
mod keys;
mod packed;
mod scan;
mod shard;
mod spool;

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use super::param::{Common, Section};
use super::registry::Def;
use super::{Claim, Counters, Fetch, Found, Holder, Listed, Spool, Store, lock};
use crate::entry::{Body, Event, Meta, millis_since_epoch};
use crate::key::Key;
use crate::store::journal::{self, Note};
pub use crate::store::kit::make_dir;

/// The `file` backend: entries under the cache directory, no settings of its own.
pub static DEF: Def = Def {
    name: "file",
    aliases: &["pickle"],
    reach: 1,
    params: &[],
    check: |_, _| Ok(()),
    open,
    pooled: |_| false,
};

fn open(_: &Section, ctx: &Common) -> Box<dyn Store> {
    Box::new(FileStore::new(ctx.cache_dir.clone()))
}

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: PathBuf) -> FileStore {
        FileStore { dir }
    }

    fn entry_path(&self, key: &Key) -> PathBuf {
        let hex = key.hex();
        self.dir.join("entries").join(&hex[..2]).join(hex)
    }

    fn lock_path(&self, key: &Key) -> PathBuf {
        self.dir.join("locks").join(format!("{}.lock", key.hex()))
    }

    fn subdir(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        make_dir(&path)
            .with_context(|| format!("cannot create cache directory {}", path.display()))?;
        Ok(path)
    }

    /// Read the metadata of the entry file at `path`; `None` if it is gone.
    fn open_entry(&self, path: &Path, key: &Key) -> Result<Option<(Meta, File)>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot open cache entry {}", path.display()));
            }
        };
        let meta = entry_meta(&file, &file.metadata()?, key, &mut Vec::new())?;
        Ok(Some((meta, file)))
    }
}

/// The metadata of an entry file (`stat` is its own), read into `buf`; the
/// entry was created when its file was last written.
fn entry_meta(file: &File, stat: &std::fs::Metadata, key: &Key, buf: &mut Vec<u8>) -> Result<Meta> {
    let mut meta = format::read_meta_into(file, stat.len(), key, buf)?;
    meta.created_ms = millis_since_epoch(stat.modified()?);
    Ok(meta)
}

struct FileBody(File);

impl Fetch for FileBody {
    fn fetch(self: Box<Self>) -> Result<Body> {
        Ok(Body {
            file: self.0,
            start: 0,
        })
    }
}

impl Store for FileStore {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        let Some((meta, file)) = self.open_entry(&self.entry_path(key), key)? else {
            return Ok(None);
        };
        Ok(Some(Found {
            meta,
            body: Box::new(FileBody(file)),
            stale_after: None,
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        let tmp = self.subdir("tmp")?;
        let stdout = NamedTempFile::new_in(&tmp)
            .with_context(|| format!("cannot create a cache entry in {}", tmp.display()))?;
        let stderr = tempfile::tempfile_in(&tmp)
            .with_context(|| format!("cannot create a cache entry in {}", tmp.display()))?;
        Ok(Box::new(spool::FileSpool {
            stdout,
            stderr,
            dest: self.entry_path(key),
            stats: self.dir.join("stats"),
        }))
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        let me = &Holder::me();
        self.subdir("locks")?;
        lock::claim(&self.lock_path(key), me)
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        lock::wait(&self.lock_path(key), timeout)
    }

    fn remove(&self, key: &Key, namespace: &str) -> Result<u64> {
        let path = self.entry_path(key);
        let bytes = match std::fs::metadata(&path) {
            Ok(stat) => stat.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
        journal::append(
            &self.dir.join("stats"),
            namespace,
            key,
            Note::Removed { bytes },
        )?;
        Ok(bytes)
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        self.scan(namespace, &mut |listed| {
            out.push(listed);
            Ok(())
        })?;
        Ok(out)
    }

    fn scan(&self, namespace: Option<&str>, visit: &mut super::Visit) -> Result<()> {
        scan::scan(&self.dir, namespace, visit)
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        if let Event::Hit { .. } = event {
            let now = rustix::fs::Timestamps {
                last_access: timespec(SystemTime::now()),
                last_modification: rustix::fs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rustix::fs::UTIME_OMIT,
                },
            };
            let path = self.entry_path(key);
            rustix::fs::utimensat(rustix::fs::CWD, &path, &now, rustix::fs::AtFlags::empty())?;
        }
        journal::append(&self.dir.join("stats"), namespace, key, event.into())?;
        Ok(())
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        let mut out = BTreeMap::new();
        for (ns, path) in journal::all(&self.dir.join("stats"))? {
            out.insert(ns, journal::fold(&path)?.counters);
        }
        Ok(out)
    }

    fn reset_counters(&self) -> Result<()> {
        Ok(journal::reset(&self.dir.join("stats"))?)
    }

    fn clear_claims(&self) -> Result<u64> {
        lock::clear_dead(&self.dir.join("locks"))
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn sweep(&self) -> Result<()> {
        // A temp file an hour old belongs to a write that was killed (an
        // entry's in tmp/, a listing index's beside the index).
        let cutoff = SystemTime::now() - Duration::from_secs(3600);
        let tmp = self.dir.join("tmp");
        let index = self.dir.join("index");
        let temps = scan::sorted_names(&index)?
            .into_iter()
            .filter(|n| n.to_string_lossy().starts_with(".index"))
            .map(|n| index.join(n));
        for path in scan::sorted_names(&tmp)?
            .into_iter()
            .map(|n| tmp.join(n))
            .chain(temps)
        {
            if std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
            {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        Ok(crate::store::kit::once_per(
            &self.subdir("marks")?,
            what,
            interval,
        )?)
    }
}

fn timespec(t: SystemTime) -> rustix::fs::Timespec {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    rustix::fs::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
