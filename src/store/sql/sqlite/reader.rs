//! The connection a hit reads through. SQLite's first user of a WAL
//! database rebuilds the shared index in its `-shm` file (a truncate and
//! eight page writes), and with no process keeping the database open every
//! run is a first user. A lookup's own connection opens the `-shm` file
//! read-only instead (`readonly_shm`), when the WAL is empty, as every
//! writer here leaves it: SQLite then reads the database file alone,
//! under the same read locks as any reader, so writers and checkpoints
//! are kept out as usual.
//! A process that writes closes it first: connections of one process share
//! the `-shm` file, and a writer cannot work through a read-only one.
use std::path::Path;

use std::os::unix::fs::MetadataExt;

use anyhow::{Result, bail};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::db::{BUSY_TIMEOUT, Db, configure, stable_plans};
use super::schema::{V1, check_version, version};

impl Db {
    /// `f` on a connection that reads: this process's writing one if it
    /// has one, else the lookup connection; if that cannot be had, or `f`
    /// fails on it for want of write access, on the writing one (made now),
    /// as without it. Any other failure is `f`'s own (a database locked
    /// for too long is not waited for twice).
    pub fn read<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        if !self.read_only && !self.writing() && !self.reader_failed.get() {
            let mut reader = self.reader.borrow_mut();
            if reader.is_none() {
                match open_reader(self) {
                    Ok(Some(conn)) => *reader = Some(conn),
                    _ => self.reader_failed.set(true),
                }
            }
            if let Some(conn) = reader.as_ref() {
                let done = f(conn);
                // The first lookup ends the transaction `open_reader` began.
                let ended = conn.is_autocommit() || conn.execute_batch("COMMIT").is_ok();
                match done {
                    Err(e) if wants_write_access(&e) => {
                        *reader = None;
                        self.reader_failed.set(true);
                    }
                    done => {
                        if !ended {
                            // Never hold a snapshot (it would keep
                            // checkpoints from emptying the WAL).
                            *reader = None;
                            self.reader_failed.set(true);
                        }
                        return done;
                    }
                }
            }
        }
        f(self.conn()?)
    }

    /// Before a lookup on a connection an earlier call opened (the
    /// daemon keeps a store between runs): the database at `path` is still
    /// the file it reads. One removed or replaced since (a new cache, or a
    /// damaged one moved aside) is an error, on which the daemon opens the
    /// new one. A run's first lookup opens its connection, and pays nothing.
    pub(super) fn same_file(&self) -> Result<()> {
        let open = self.writing() || self.reader.borrow().is_some();
        let Some(opened) = self.opened.get().filter(|_| open) else {
            return Ok(());
        };
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now != Some(opened) {
            bail!(
                "the SQLite cache {} was removed or replaced while open",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Close the lookup connection (before a writing one opens).
    pub(super) fn close_reader(&self) {
        if let Ok(mut reader) = self.reader.try_borrow_mut() {
            *reader = None;
        }
    }
}

/// The lookup connection; `None` when there is no database with our
/// tables yet (the writing connection makes them).
fn open_reader(db: &Db) -> Result<Option<Connection>> {
    // With frames in the WAL (a writer at work, or one killed before its
    // checkpoint) a reader of its own would read them all, or wait for a
    // recovery it may not run: read as before.
    let stat = match std::fs::metadata(&db.path) {
        Ok(stat) if stat.is_file() && db.wal_len() == 0 => stat,
        _ => return Ok(None),
    };
    db.opened.set(Some((stat.dev(), stat.ino())));
    configure();
    let conn = Connection::open_with_flags(
        uri(&db.path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    stable_plans(&conn)?;
    // It cannot checkpoint: closing it need not try.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    // One read transaction for the version check, the schema SQLite reads
    // before the first statement, and that statement: each transaction of
    // its own would re-read the database header and the WAL index.
    conn.execute_batch("BEGIN")?;
    let Some(found) = check_version(version(&conn)?, &db.path)? else {
        return Ok(None);
    };
    db.set_counters(found == V1);
    Ok(Some(conn))
}

/// SQLite could not read through a read-only `-shm` (or WAL) alone.
fn wants_write_access(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
        )
    })
}

/// `path` as a `file:` URI that asks for a read-only `-shm`: every byte
/// but unreserved ones and `/` percent-encoded.
fn uri(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out.push_str("?readonly_shm=1");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_becomes_a_uri_sqlite_reads_back() {
        assert_eq!(
            uri(Path::new("/home/me/a b%?#é/c.db")),
            "file:/home/me/a%20b%25%3F%23%C3%A9/c.db?readonly_shm=1"
        );
        assert_eq!(uri(Path::new("c.db")), "file:c.db?readonly_shm=1");
    }
}
