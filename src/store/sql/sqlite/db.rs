//! The SQLite connection: opened on first use, WAL, a busy timeout, and a
//! versioned schema created the first time a database is used.
use std::cell::{Cell, OnceCell};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::store::kit::{make_dir, open_private};

/// The schema this build reads and writes.
const VERSION: i64 = 1;

/// How long a statement waits for another process's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Fold the WAL into the database, and empty it, once it is this big.
/// Each process, as the database's first user, reads every WAL frame to
/// index them; SQLite's auto-checkpoint folds frames back but keeps them
/// until that process writes again, which a hit never does: the WAL grew
/// two pages a hit (past 1000, every hit also checkpointed it all). At
/// 1 MiB a hit reads ≤ ~250 frames (≈ 1 µs each); one in ~125 checkpoints.
pub const WAL_LIMIT: u64 = 1024 * 1024;

/// Chunks live in their own table, keyed by the entry row's id (not its key):
/// a reader holding an older entry's id can tell it was replaced meanwhile.
/// `pending` hands out those ids (never reused) to writes in progress, whose
/// chunks nobody sees until the entry row that names them is inserted.
const SCHEMA: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    namespace TEXT NOT NULL,
    meta BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL
);
CREATE INDEX entries_namespace ON entries (namespace);
CREATE TABLE chunks (
    entry INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (entry, seq)
);
CREATE TABLE counters (
    namespace TEXT PRIMARY KEY,
    hits INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    waits INTEGER NOT NULL DEFAULT 0,
    stale_serves INTEGER NOT NULL DEFAULT 0,
    saved_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE marks (what TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
CREATE TABLE pending (id INTEGER PRIMARY KEY AUTOINCREMENT, started_ms INTEGER NOT NULL);
";

/// A database path and, once used, its connection.
pub struct Db {
    pub path: PathBuf,
    conn: OnceCell<Connection>,
    /// Device and inode of the file the connection opened: a damaged
    /// database is moved aside only if it is still the one at `path`.
    opened: Cell<Option<(u64, u64)>>,
    /// A write waited out the busy timeout: later calls of this process
    /// fail at once instead of each waiting again.
    busy: Cell<bool>,
    /// Read-only: the file is never created, changed or moved aside.
    read_only: bool,
    /// Read-only found a database without our tables: an empty cache.
    schemaless: Cell<bool>,
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
        self.trim_wal(conn);
        Ok(out)
    }

    /// Past [`WAL_LIMIT`], checkpoint and truncate the WAL. Best effort and
    /// never waiting: a reader or writer in the way leaves it to a later write.
    fn trim_wal(&self, conn: &Connection) {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        if !std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT) {
            return;
        }
        let _ = conn.busy_timeout(Duration::ZERO);
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
    }
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
        .with_context(|| format!("cannot set up the SQLite cache {}", path.display()))?;
    ensure_schema(&conn, path)?;
    Ok(conn)
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
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(fail)?;
    conn.busy_timeout(BUSY_TIMEOUT).with_context(fail)?;
    let found = version(&conn).with_context(|| {
        format!(
            "cannot read the schema of the SQLite cache {}",
            path.display()
        )
    })?;
    db.schemaless.set(!check_version(found, path)?);
    Ok(conn)
}

/// Check the schema version; create the schema in a new database.
fn ensure_schema(conn: &Connection, path: &Path) -> Result<()> {
    let fail = || {
        format!(
            "cannot read the schema of the SQLite cache {}",
            path.display()
        )
    };
    if check_version(version(conn).with_context(fail)?, path)? {
        return Ok(());
    }
    let create = || format!("cannot create the SQLite cache {}", path.display());
    // Both persist in the file. auto_vacuum only takes in an empty file, so
    // it goes first: switching to WAL already writes the header.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
        .with_context(create)?;
    // Switching to WAL takes the file exclusively and does not go through
    // the busy handler: retry while first users race for it.
    let deadline = crate::store::kit::Deadline::after(Some(BUSY_TIMEOUT));
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && !deadline.passed() =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e).with_context(create),
        }
    }
    let tx =
        Transaction::new_unchecked(conn, TransactionBehavior::Immediate).with_context(create)?;
    // Another process may have created it while we waited for the lock.
    if !check_version(version(&tx).with_context(fail)?, path)? {
        tx.execute_batch(SCHEMA).with_context(create)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [VERSION],
        )
        .with_context(create)?;
    }
    tx.commit().with_context(create)
}

/// `true` when the schema is ours, `false` when there is none yet.
fn check_version(found: Option<i64>, path: &Path) -> Result<bool> {
    match found {
        None => Ok(false),
        Some(VERSION) => Ok(true),
        Some(v) if v > VERSION => bail!(
            "the SQLite cache {} has schema version {v}, newer than this cachier knows ({VERSION}); \
             upgrade cachier, or use another database with --sql-url sqlite:///path.db",
            path.display()
        ),
        Some(v) => bail!(
            "the SQLite cache {} has unknown schema version {v}; \
             remove it, or use another database with --sql-url sqlite:///path.db",
            path.display()
        ),
    }
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

fn version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    // One statement in a database we made; any failure (no such table, a
    // damaged page, a lock) is left to the full check, which reports it.
    if let Ok(found) = conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0)) {
        return Ok(found);
    }
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(None);
    }
    conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
}
