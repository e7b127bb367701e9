//! Moving an entry's output in and out of SQLite in chunks of at most
//! 1 MiB, through local temp files: memory stays constant at any size.
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use rusqlite::{OptionalExtension, params};

use super::db::Db;
use crate::entry::{Body, Corrupt, Meta, Stream, millis_since_epoch};
use crate::key::Key;
use crate::store::{Fetch, Spool};

use crate::store::kit::CHUNK;
/// Chunks per write transaction while an entry is staged.
const BATCH: usize = 16;

/// Output spooled to two anonymous temp files, published by `commit`.
pub struct SqliteSpool {
    pub db: Rc<Db>,
    pub stdout: File,
    pub stderr: File,
}

impl Spool for SqliteSpool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.write_all(data),
            Stream::Stderr => self.stderr.write_all(data),
        }
    }

    /// The chunks go in under an id nobody reads yet, a batch per
    /// transaction, so a big entry never holds the write lock long enough
    /// to stall other callers' hits; one last short transaction replaces
    /// the old entry with the row naming them. A reader sees the old entry
    /// or the new one, never half.
    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let mut encoded = Vec::new();
        ciborium::into_writer(meta, &mut encoded).context("cannot encode the entry")?;
        let body = meta.body_len();
        let size = body + encoded.len() as u64;
        let db = &self.db;
        let id = db.write("store an entry", |conn| {
            conn.execute(
                "INSERT INTO pending (started_ms) VALUES (?1)",
                [millis_since_epoch(SystemTime::now()) as i64],
            )?;
            Ok(conn.last_insert_rowid())
        })?;
        let mut staged = Staged {
            db,
            id,
            done: false,
        };
        self.stdout.seek(SeekFrom::Start(0))?;
        self.stderr.seek(SeekFrom::Start(0))?;
        let mut files = [&mut self.stdout, &mut self.stderr].into_iter().peekable();
        let mut buf = vec![0u8; CHUNK.min(body as usize).max(1)];
        let (mut seq, mut written) = (0i64, 0u64);
        while files.peek().is_some() {
            db.write("store an entry", |conn| {
                let mut insert = conn
                    .prepare_cached("INSERT INTO chunks (entry, seq, data) VALUES (?1, ?2, ?3)")?;
                for _ in 0..BATCH {
                    // Full chunks, stderr's bytes after stdout's in one
                    // stream: a small entry is one chunk, which comes
                    // with its lookup (see `get`).
                    let mut n = 0;
                    while n < buf.len() {
                        let Some(file) = files.peek_mut() else {
                            break;
                        };
                        let k = crate::store::read_full(file, &mut buf[n..])?;
                        if n + k < buf.len() {
                            files.next();
                        }
                        n += k;
                    }
                    if n == 0 {
                        break;
                    }
                    insert.execute(params![id, seq, &buf[..n]])?;
                    seq += 1;
                    written += n as u64;
                }
                Ok(())
            })?;
        }
        if written != body {
            bail!("spooled {written} bytes where the entry says {body}");
        }
        let key = &meta.key.0[..];
        db.write("store an entry", |conn| {
            if conn.execute("DELETE FROM pending WHERE id = ?1", [id])? != 1 {
                bail!("the write took so long that gc swept it");
            }
            conn.execute(
                "DELETE FROM chunks WHERE entry IN (SELECT id FROM entries WHERE key = ?1)",
                [key],
            )?;
            conn.execute("DELETE FROM entries WHERE key = ?1", [key])?;
            conn.execute(
                "INSERT INTO entries (id, key, namespace, meta, created_ms, last_used_ms, hits, size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0, ?6)",
                params![id, key, meta.namespace, encoded, meta.created_ms as i64, size as i64],
            )?;
            Ok(())
        })?;
        staged.done = true;
        Ok(())
    }
}

/// Chunks written for an entry not yet published; dropped unpublished,
/// they go (best effort: gc's sweep removes what is left).
struct Staged<'a> {
    db: &'a Db,
    id: i64,
    done: bool,
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.db.write("discard a failed write", |conn| {
                conn.execute("DELETE FROM chunks WHERE entry = ?1", [self.id])?;
                conn.execute("DELETE FROM pending WHERE id = ?1", [self.id])?;
                Ok(())
            });
        }
    }
}

/// Remove the chunks of writes that started before `cutoff_ms` and never
/// published: their writer was killed.
pub fn sweep_pending(db: &Db, cutoff_ms: i64) -> Result<()> {
    db.write("sweep interrupted writes", |conn| {
        conn.execute(
            "DELETE FROM chunks WHERE entry IN (SELECT id FROM pending WHERE started_ms < ?1)",
            [cutoff_ms],
        )?;
        conn.execute("DELETE FROM pending WHERE started_ms < ?1", [cutoff_ms])?;
        Ok(())
    })
}

/// Where a fetched body goes: a big one in a temp file beside the database.
fn scratch(db: &Db, len: u64) -> Result<File> {
    // The directory only for a big one (a small one is a memfd).
    let big = || {
        db.dir()
            .map_err(io::Error::other)
            .and_then(tempfile::tempfile_in)
    };
    crate::store::kit::scratch(len, big).with_context(|| db.fail("read an entry"))
}

/// The body of entry row `id`, fetched on demand.
pub struct Chunks {
    pub db: Rc<Db>,
    pub id: i64,
    pub key: Key,
    /// stdout plus stderr bytes, as the metadata says.
    pub len: u64,
}

impl Fetch for Chunks {
    fn fetch(self: Box<Self>) -> Result<Body> {
        let db = Rc::clone(&self.db);
        db.guard(self.read_all())
    }
}

impl Chunks {
    fn read_all(&self) -> Result<Body> {
        self.db.read(|conn| self.read_from(conn))
    }

    fn read_from(&self, conn: &rusqlite::Connection) -> Result<Body> {
        let db = &self.db;
        let fail = || db.fail("read an entry");
        let corrupt = |why: &str| Corrupt {
            key: self.key.short(),
            why: why.to_string(),
        };
        let mut file = scratch(db, self.len)?;
        // One statement, so one snapshot (no transaction to begin and end):
        // a replaced entry's chunks go in the transaction that replaces its
        // row, so they are all here or none are.
        let mut select = conn
            .prepare("SELECT seq, data FROM chunks WHERE entry = ?1 ORDER BY seq")
            .with_context(fail)?;
        let mut rows = select.query([self.id]).with_context(fail)?;
        let (mut want, mut got) = (0i64, 0u64);
        while let Some(row) = rows.next().with_context(fail)? {
            let seq: i64 = row.get(0).with_context(fail)?;
            if seq != want {
                return Err(corrupt("a chunk is missing").into());
            }
            let data = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(|_| corrupt("a chunk is not a blob"))?;
            file.write_all(data).with_context(fail)?;
            want += 1;
            got += data.len() as u64;
        }
        // No chunks at all: replaced or removed since `get` (ids are never
        // reused, so a row under it is this entry's), or damaged.
        let gone = || {
            conn.query_row("SELECT 1 FROM entries WHERE id = ?1", [self.id], |_| Ok(()))
                .optional()
                .map(|row| row.is_none())
        };
        if got != self.len && want == 0 && gone().with_context(fail)? {
            bail!(
                "cache entry {} changed while it was read from the SQLite cache {}",
                self.key.short(),
                db.path.display()
            );
        }
        if got != self.len {
            return Err(corrupt("truncated").into());
        }
        Ok(Body { file, start: 0 })
    }
}

/// An entry of at most this many bytes, metadata included, comes with its
/// lookup: its first chunk, when that is all its output, is read with its
/// row.
pub const INLINE: u64 = 64 * 1024;

/// An entry's row as looked up, with its first chunk when it is small.
pub struct LookedUp {
    pub id: i64,
    pub meta: Vec<u8>,
    pub created_ms: i64,
    pub size: i64,
    pub first: Option<Vec<u8>>,
}

/// The lookup `get` makes, its columns as [`looked_up`] reads them.
pub const LOOKUP: &str = "SELECT id, meta, created_ms, size,
    CASE WHEN size <= ?2 THEN (SELECT data FROM chunks WHERE entry = id AND seq = 0) END
    FROM entries WHERE key = ?1";

pub fn looked_up(r: &rusqlite::Row) -> rusqlite::Result<LookedUp> {
    Ok(LookedUp {
        id: r.get(0)?,
        meta: r.get(1)?,
        created_ms: r.get(2)?,
        size: r.get(3)?,
        // A chunk that is not a blob is left to `Chunks`, which says so.
        first: r.get(4).ok(),
    })
}

impl LookedUp {
    /// The body, whole if it came along (one snapshot with the row:
    /// nothing that replaces the entry later can take it away), else to be
    /// fetched when served.
    pub fn body(self, db: &Rc<Db>, key: &Key, len: u64) -> Box<dyn Fetch> {
        let whole = self.size <= INLINE as i64
            && match &self.first {
                Some(first) => first.len() as u64 == len,
                None => len == 0,
            };
        if whole {
            return Box::new(Inline {
                db: Rc::clone(db),
                data: self.first.unwrap_or_default(),
            });
        }
        Box::new(Chunks {
            db: Rc::clone(db),
            id: self.id,
            key: *key,
            len,
        })
    }
}

/// A small entry's body, read with its row.
pub struct Inline {
    db: Rc<Db>,
    data: Vec<u8>,
}

impl Fetch for Inline {
    fn fetch(self: Box<Self>) -> Result<Body> {
        let mut file = scratch(&self.db, self.data.len() as u64)?;
        file.write_all(&self.data)
            .with_context(|| self.db.fail("read an entry"))?;
        Ok(Body { file, start: 0 })
    }
}
