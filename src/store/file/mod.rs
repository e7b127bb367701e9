//! The `file` store: one file per entry under the cache directory.
//!
//! ```text
//! <dir>/entries/<2 hex>/<64 hex>   entry files (see format.rs)
//! <dir>/locks/<64 hex>.lock        single-flight claims (see lock.rs)
//! <dir>/stats/<namespace>.log      counter journals (see journal.rs)
//! <dir>/tmp/                       entries being written
//! ```
//! An entry's creation time is its file's mtime (so `touch -d` ages it); its
//! last hit is its atime, set explicitly on each hit. A dead owner is
//! noticed at once: the kernel drops its `flock`.
mod format;
mod journal;
mod lock;

use std::fs::{DirBuilder, File, FileTimes};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use super::{Claim, Fetch, Found, Holder, Spool, Store};
use crate::entry::{Body, Event, Meta, Stream, millis_since_epoch};
use crate::key::Key;

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
        let stat = file.metadata()?;
        let mut meta = format::read_meta(&file, stat.len(), key)?;
        meta.created_ms = millis_since_epoch(stat.modified()?);
        Ok(Some((meta, file)))
    }
}

/// Create `path` and its parents with mode 0700 (not chmod after the fact).
pub fn make_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
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
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        let tmp = self.subdir("tmp")?;
        let stdout = NamedTempFile::new_in(&tmp)
            .with_context(|| format!("cannot create a cache entry in {}", tmp.display()))?;
        let stderr = tempfile::tempfile_in(&tmp)
            .with_context(|| format!("cannot create a cache entry in {}", tmp.display()))?;
        Ok(Box::new(FileSpool {
            stdout,
            stderr,
            dest: self.entry_path(key),
        }))
    }

    fn claim(&self, key: &Key, me: &Holder) -> Result<Claim> {
        self.subdir("locks")?;
        lock::claim(&self.lock_path(key), me)
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        lock::wait(&self.lock_path(key), timeout)
    }

    fn remove(&self, key: &Key) -> Result<()> {
        match std::fs::remove_file(self.entry_path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Meta>> {
        let root = self.dir.join("entries");
        let mut out = Vec::new();
        for shard in read_dir_or_empty(&root)? {
            for path in read_dir_or_empty(&shard)? {
                let Some(key) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(parse_key)
                else {
                    continue;
                };
                // A corrupt entry is skipped here; a run that hits it discards it.
                if let Ok(Some((meta, _))) = self.open_entry(&path, &key)
                    && namespace.is_none_or(|ns| ns == meta.namespace)
                {
                    out.push(meta);
                }
            }
        }
        Ok(out)
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
            rustix::fs::utimensat(
                rustix::fs::CWD,
                self.entry_path(key),
                &now,
                rustix::fs::AtFlags::empty(),
            )?;
        }
        journal::append(&self.dir.join("stats"), namespace, event)?;
        Ok(())
    }
}

fn timespec(t: SystemTime) -> rustix::fs::Timespec {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    rustix::fs::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

fn parse_key(hex: &str) -> Option<Key> {
    blake3::Hash::from_hex(hex).ok().map(|h| Key(*h.as_bytes()))
}

fn read_dir_or_empty(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            Ok(paths)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// Stdout goes straight into the entry's temp file; stderr into its own
/// temp file, appended at commit, then the metadata, then one rename.
struct FileSpool {
    stdout: NamedTempFile,
    stderr: File,
    dest: PathBuf,
}

impl Spool for FileSpool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        match stream {
            Stream::Stdout => self.stdout.as_file_mut().write_all(data),
            Stream::Stderr => self.stderr.write_all(data),
        }
    }

    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let fail = || format!("cannot store cache entry {}", meta.key.short());
        self.stderr.seek(SeekFrom::Start(0)).with_context(fail)?;
        let file = self.stdout.as_file_mut();
        io::copy(&mut self.stderr, file).with_context(fail)?;
        format::write_meta(file, meta).with_context(fail)?;
        file.set_times(FileTimes::new().set_modified(meta.created()))
            .with_context(fail)?;
        if let Some(parent) = self.dest.parent() {
            make_dir(parent).with_context(fail)?;
        }
        self.stdout
            .persist(&self.dest)
            .map_err(|e| e.error)
            .with_context(fail)?;
        Ok(())
    }
}
