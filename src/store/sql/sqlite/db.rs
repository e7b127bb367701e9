//! The SQLite connection: opened on first use, WAL, a busy timeout, its
//! schema checked (schema.rs), and the WAL emptied after writes.
use std::cell::{Cell, OnceCell, RefCell};
use std::ffi::{c_int, c_void};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior, ffi};

use super::schema::{V1, check_version, ensure_schema, version};
use crate::store::kit::{make_dir, open_private};

/// How long a statement waits for another process's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Fold the WAL into the database, and empty it, once it is this big in
/// the middle of a process's writes (a process that wrote empties it as it
/// ends: see `Drop for Db`).
pub const WAL_LIMIT: u64 = 1024 * 1024;

/// A database path and, once used, its connection.
pub struct Db {
    pub path: PathBuf,
    conn: OnceCell<Connection>,
    /// Device and inode of the file the connection opened: a damaged
    /// database is moved aside only if it is still the one at `path`, and
    /// a connection kept between lookups (the daemon's) is not used once
    /// another file is there.
    pub(super) opened: Cell<Option<(u64, u64)>>,
    /// A write waited out the busy timeout: later calls of this process
    /// fail at once instead of each waiting again.
    busy: Cell<bool>,
    /// Read-only: the file is never created, changed or moved aside.
    pub(super) read_only: bool,
    /// Read-only found a database without our tables: an empty cache.
    schemaless: Cell<bool>,
    /// The database has the first schema's `counters` table.
    counters: Cell<bool>,
    /// This process committed a write: it empties the WAL when done.
    wrote: Cell<bool>,
    /// The lookup connection (reader.rs), until a writing one opens.
    pub(super) reader: RefCell<Option<Connection>>,
    /// It could not be had, or failed: lookups use `conn`.
    pub(super) reader_failed: Cell<bool>,
}

impl Db {
    pub fn new(path: PathBuf, read_only: bool) -> Db {
        Db {
            path,
            conn: OnceCell::new(),
            opened: Cell::new(None),
            busy: Cell::new(false),
            read_only,
            schemaless: Cell::new(false),
            counters: Cell::new(false),
            wrote: Cell::new(false),
            reader: RefCell::new(None),
            reader_failed: Cell::new(false),
        }
    }

    /// Read-only, and no database (or one without our tables) there: an
    /// empty cache, which read-only does not create.
    pub fn empty(&self) -> Result<bool> {
        if !self.read_only {
            return Ok(false);
        }
        if self.conn.get().is_none() && !self.path.exists() {
            return Ok(true);
        }
        self.conn()?;
        Ok(self.schemaless.get())
    }

    /// Read-only found a database without our tables.
    pub fn found_schemaless(&self) -> bool {
        self.schemaless.get()
    }

    /// The database has a `counters` table: what the first version counted
    /// (call after [`Db::conn`]).
    pub fn has_counters(&self) -> bool {
        self.counters.get()
    }

    pub(super) fn set_counters(&self, v1: bool) {
        self.counters.set(v1);
    }

    /// The writing connection is open.
    pub(super) fn writing(&self) -> bool {
        self.conn.get().is_some()
    }

    /// `cannot {what} in the SQLite cache {path}`, for error context.
    pub fn fail(&self, what: &str) -> String {
        format!("cannot {what} in the SQLite cache {}", self.path.display())
    }

    /// The directory for spool and fetch temp files: beside the database,
    /// on a real disk (a tmpfs /tmp would hold a 1 GiB output in RAM).
    pub fn dir(&self) -> Result<PathBuf> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        make_dir(&dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        Ok(dir)
    }

    pub fn conn(&self) -> Result<&Connection> {
        if self.busy.get() {
            bail!(
                "the SQLite cache {} is locked by another process (waited {} s)",
                self.path.display(),
                BUSY_TIMEOUT.as_secs()
            );
        }
        if let Some(conn) = self.conn.get() {
            return Ok(conn);
        }
        self.close_reader();
        let conn = match open(self) {
            Err(e) if is_damaged(&e) && self.read_only => {
                return Err(e.context(format!(
                    "the SQLite cache {} is damaged (left as it is: read-only)",
                    self.path.display()
                )));
            }
            Err(e) if is_damaged(&e) => {
                let aside = self.set_aside()?;
                crate::warn::once(&format!(
                    "the SQLite cache {} is damaged ({}); moved it to {} and started a new one",
                    self.path.display(),
                    root_cause(&e),
                    aside.display()
                ));
                open(self)?
            }
            other => other?,
        };
        Ok(self.conn.get_or_init(|| conn))
    }

    /// Pass `result` on; if it failed because the database file is damaged,
    /// move the file aside first, so that the next run starts a new one.
    pub fn guard<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) if is_damaged(&e) && !self.read_only => match self.set_aside() {
                Ok(aside) => Err(e.context(format!(
                    "the SQLite cache is damaged; moved it to {} (the next run starts a new one)",
                    aside.display()
                ))),
                Err(why) => Err(e.context(format!("{why:#}"))),
            },
            other => other,
        }
    }

    /// Rename the database (and its WAL and shared-memory files) to
    /// `<name>.corrupt-<UTC time>`, kept for inspection; returns the new path.
    fn set_aside(&self) -> Result<PathBuf> {
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let mut name = self.path.as_os_str().to_owned();
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        name.push(format!(".corrupt-{}", stamp.replace([':', '-'], "")));
        let aside = PathBuf::from(name);
        // Another process may have replaced it already: leave its new one be.
        if current.is_some() && (self.opened.get().is_none() || current == self.opened.get()) {
            std::fs::rename(&self.path, &aside).with_context(|| {
                format!(
                    "the SQLite cache {} is damaged, and moving it aside failed",
                    self.path.display()
                )
            })?;
            for suffix in ["-wal", "-shm"] {
                let mut from = self.path.as_os_str().to_owned();
                from.push(suffix);
                let mut to = aside.as_os_str().to_owned();
                to.push(suffix);
                let _ = std::fs::rename(&from, &to);
            }
        }
        self.opened.set(None);
        Ok(aside)
    }

    /// Run `f` in a write transaction taken up front (`BEGIN IMMEDIATE`):
    /// a deferred one could fail to upgrade without honouring the timeout.
    pub fn write<T>(&self, what: &str, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.conn()?;
        let tx = match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
                    self.busy.set(true);
                }
                return Err(e).with_context(|| {
                    format!(
                        "{} (locked by another process for over {} s)",
                        self.fail(what),
                        BUSY_TIMEOUT.as_secs()
                    )
                });
            }
        };
        let out = self.guard(f(&tx).with_context(|| self.fail(what)))?;
        self.guard(tx.commit().with_context(|| self.fail(what)))?;
        self.wrote.set(true);
        // A long run of writes (a big entry, a gc) empties it on the way.
        if self.wal_len() > WAL_LIMIT {
            checkpoint(conn);
            let _ = conn.busy_timeout(BUSY_TIMEOUT);
        }
        Ok(out)
    }

    pub(super) fn wal_len(&self) -> u64 {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(&wal).map_or(0, |m| m.len())
    }
}

impl Drop for Db {
    /// A process that wrote empties the WAL as it ends (one checkpoint, so
    /// one pair of fsyncs, per miss or command, not per write): the first
    /// process to open the database resets SQLite's shared index, so every
    /// later run, each one a first user, re-reads every WAL frame (≈ 3.5k
    /// instructions each; 30 after a new database's first miss) before its
    /// first read, and reads none once the WAL is empty.
    fn drop(&mut self) {
        if let (true, Some(conn)) = (self.wrote.get(), self.conn.get())
            && self.wal_len() > 0
        {
            checkpoint(conn);
        }
    }
}

/// Fold the WAL into the database and truncate it. Best effort and never
/// waiting: a reader or writer in the way leaves it to a later write.
fn checkpoint(conn: &Connection) {
    let _ = conn.busy_timeout(Duration::ZERO);
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn open(db: &Db) -> Result<Connection> {
    let path = &db.path;
    if db.read_only {
        return open_read_only(db);
    }
    // A hit finds the file there: one stat, no directory or file to make.
    let stat = match std::fs::metadata(path) {
        Ok(stat) if stat.is_file() => stat,
        _ => {
            db.dir()?;
            // Create the file 0600 ourselves; SQLite gives its -wal and
            // -shm files the database file's mode.
            open_private(path)
                .and_then(|file| file.metadata())
                .with_context(|| format!("cannot open the SQLite cache {}", path.display()))?
        }
    };
    db.opened.set(Some((stat.dev(), stat.ino())));
    configure();
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open the SQLite cache {}", path.display()))?;
    // No fsync on the hit path: WAL commits sync only at checkpoints, and
    // those run when the WAL has grown (auto-checkpoint), not at every
    // close, which would also delete and recreate the WAL each run.
    conn.busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        .and_then(|()| {
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                .map(drop)
        })
        .and_then(|()| stable_plans(&conn))
        .with_context(|| format!("cannot set up the SQLite cache {}", path.display()))?;
    let found = ensure_schema(&conn, path)?;
    db.counters.set(found == V1);
    Ok(conn)
}

/// SQLite's process-wide memory settings, before its first use. By default
/// each connection sets up a 20-page bulk allocation for its page cache and
/// a 48 KB lookaside, writing to every page of both: about 20 of a hit's
/// 140 page faults, where a hit reads a handful of pages. Pages then come
/// one at a time as used, and 20 lookaside slots cover a hit's statements.
/// Nor does SQLite keep memory statistics (a mutex and counters around each
/// of a hit's ~250 allocations) that nothing here reads.
pub(super) fn configure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: each option takes these argument types (a pointer and two
        // ints; two ints; an int). The `Once` runs it before this process's first
        // connection, and no other SQLite call of ours runs meanwhile; once
        // SQLite is initialised, each call returns SQLITE_MISUSE and
        // changes nothing.
        unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_PAGECACHE,
                std::ptr::null_mut::<c_void>(),
                0 as c_int,
                0 as c_int,
            );
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_LOOKASIDE, 1200 as c_int, 20 as c_int);
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int);
        }
    });
}

/// One plan per statement, made when it is prepared: by default SQLite
/// prepares a statement whose `WHERE` compares a column to a parameter
/// again on its first step, to plan for the bound value (≈ 23k
/// instructions on the chunks select of every hit, for the same plan).
pub(super) fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map(drop)
}

/// The existing database, opened read-only: nothing created or changed.
fn open_read_only(db: &Db) -> Result<Connection> {
    let path = &db.path;
    let fail = || {
        format!(
            "cannot open the SQLite cache {} (read-only)",
            path.display()
        )
    };
    if let Ok(stat) = std::fs::metadata(path) {
        db.opened.set(Some((stat.dev(), stat.ino())));
    }
    configure();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| stable_plans(&conn))
        .with_context(fail)?;
    let found = version(&conn).with_context(|| {
        format!(
            "cannot read the schema of the SQLite cache {}",
            path.display()
        )
    })?;
    let found = check_version(found, path)?;
    db.schemaless.set(found.is_none());
    db.counters.set(found == Some(V1));
    Ok(conn)
}

/// SQLite says the file is not a database, or a page of it is damaged.
fn is_damaged(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    })
}

fn root_cause(e: &anyhow::Error) -> String {
    e.root_cause().to_string()
}
