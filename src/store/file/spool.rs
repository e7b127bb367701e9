//! Writing an entry of the file store: output spooled straight into a temp
//! file beside the entries, published whole by one rename.
use std::fs::{File, FileTimes};
use std::io::{self, Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use super::{format, make_dir};
use crate::entry::{Meta, Stream};
use crate::store::Spool;
use crate::store::journal::{self, Note};

/// Stdout goes straight into the entry's temp file; stderr into its own
/// temp file, appended at commit, then the metadata, then one rename.
pub struct FileSpool {
    pub stdout: NamedTempFile,
    pub stderr: File,
    pub dest: PathBuf,
    pub stats: PathBuf,
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
        let bytes = file.metadata().with_context(fail)?.len();
        let replaced = std::fs::metadata(&self.dest)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        self.stdout
            .persist(&self.dest)
            .map_err(|e| e.error)
            .with_context(fail)?;
        // The entry and byte counters follow every publish.
        let (ns, key) = (&meta.namespace, &meta.key);
        if let Some(old) = replaced {
            let _ = journal::append(&self.stats, ns, key, Note::Removed { bytes: old });
        }
        let _ = journal::append(&self.stats, ns, key, Note::Stored { bytes });
        Ok(())
    }
}
