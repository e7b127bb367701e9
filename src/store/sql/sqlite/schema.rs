//! The schema: its version, created the first time a database is used,
//! and checked on every open.
use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::db::BUSY_TIMEOUT;

/// The schema this build creates, in the `schema_version` row (which any
/// version reads) and, from this one on, in the header's `user_version`
/// too, which a hit reads without a table: a later version sets its own.
const VERSION: i64 = 2;

/// The first schema, still read and written: it also has a `counters`
/// table (what that version counted, added in; the journals count now) and
/// a `marks` table (unused: marks are files now). Every process parses every
/// table of the file before its first statement, so the layout made now
/// leaves both out (≈ 58k of a hit's instructions).
pub const V1: i64 = 1;

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
CREATE TABLE pending (id INTEGER PRIMARY KEY AUTOINCREMENT, started_ms INTEGER NOT NULL);
";

/// Check the schema version; create the schema in a new database. The
/// version in use.
pub fn ensure_schema(conn: &Connection, path: &Path) -> Result<i64> {
    let fail = || {
        format!(
            "cannot read the schema of the SQLite cache {}",
            path.display()
        )
    };
    if let Some(found) = check_version(version(conn).with_context(fail)?, path)? {
        return Ok(found);
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
    let found = check_version(version(&tx).with_context(fail)?, path)?;
    if found.is_none() {
        tx.execute_batch(SCHEMA).with_context(create)?;
        tx.execute_batch(&format!("PRAGMA user_version = {VERSION}"))
            .with_context(create)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [VERSION],
        )
        .with_context(create)?;
    }
    tx.commit().with_context(create)?;
    Ok(found.unwrap_or(VERSION))
}

/// The version when the schema is one this build reads, `None` when there
/// is none yet.
pub fn check_version(found: Option<i64>, path: &Path) -> Result<Option<i64>> {
    match found {
        None => Ok(None),
        Some(v @ (V1 | VERSION)) => Ok(Some(v)),
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

pub fn version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    // This version's databases say so in the header: no table to read.
    if conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .ok()
        == Some(VERSION)
    {
        return Ok(Some(VERSION));
    }
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
