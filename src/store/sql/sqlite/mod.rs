//! The SQLite half of the `sql` store: one database file (WAL), entries as
//! a row of CBOR metadata plus their output in ≤ 1 MiB chunk rows.
//!
//! ```text
//! <db>            entries, chunks, pending, schema_version (schema.rs)
//! <db>.locks/     single-flight claims, one flock'd file per key (store/lock.rs)
//! <db>.stats/     counter journals, one per namespace (store/journal.rs)
//! <db>.marks/     rate-limit marks of background work (store/kit.rs)
//! ```
//! The `created_ms` column is an entry's age (so tests and tools can age
//! it). Events (hits, misses, waits, stale serves) are appended to the
//! journals, as the file store does, so a hit only reads the database: a
//! write transaction per hit cost a lock and two WAL pages, which every
//! later process then re-read on open (db.rs). The `hits` and
//! `last_used_ms` columns, and a first-version database's `counters` table,
//! hold what earlier versions counted; both are added in. A dead owner is
//! noticed at once: the kernel drops its `flock`.
mod body;
mod db;
mod reader;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, params};

use super::decode_row as decode;
use crate::entry::Event;
use crate::key::Key;
use crate::store::journal;
use crate::store::kit::{self, make_dir};
use crate::store::{Claim, Counters, Found, Holder, Listed, Spool, Store, lock};
use body::{INLINE, LOOKUP, SqliteSpool, looked_up};
use db::Db;

pub struct SqliteStore {
    db: Rc<Db>,
}

impl SqliteStore {
    /// No I/O: the database is opened by the first call that needs it
    /// (read-only: never created).
    pub fn new(path: PathBuf, read_only: bool) -> SqliteStore {
        SqliteStore {
            db: Rc::new(Db::new(path, read_only)),
        }
    }

    fn locks(&self) -> PathBuf {
        let mut name = OsString::from(self.db.path.as_os_str());
        name.push(".locks");
        PathBuf::from(name)
    }

    /// The rate-limit marks: `<db>.marks/`.
    fn marks(&self) -> PathBuf {
        let mut name = OsString::from(self.db.path.as_os_str());
        name.push(".marks");
        PathBuf::from(name)
    }

    /// The counter journals: `<db>.stats/`.
    fn stats(&self) -> PathBuf {
        let mut name = OsString::from(self.db.path.as_os_str());
        name.push(".stats");
        PathBuf::from(name)
    }

    /// The journals of every namespace (or of `namespace`), folded.
    fn journals(&self, namespace: Option<&str>) -> Result<Vec<(String, journal::Folded)>> {
        let dir = self.stats();
        let mut out = Vec::new();
        let all = journal::all(&dir)
            .with_context(|| format!("cannot read the counters in {}", dir.display()))?;
        for (ns, path) in all {
            if namespace.is_none_or(|n| n == ns) {
                let folded = journal::fold(&path)
                    .with_context(|| format!("cannot read the counters in {}", path.display()))?;
                out.push((ns, folded));
            }
        }
        Ok(out)
    }

    fn lock_path(&self, key: &Key) -> PathBuf {
        self.locks().join(format!("{}.lock", key.hex()))
    }
}

fn at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

impl SqliteStore {
    fn list_rows(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        // An entry's key is unique across namespaces: one map of all.
        let (mut journal_hits, mut journal_last) = (HashMap::new(), HashMap::new());
        for (_, folded) in self.journals(namespace)? {
            journal_hits.extend(folded.hits);
            journal_last.extend(folded.last_hit);
        }
        let fail = || self.db.fail("list entries");
        let conn = self.db.conn()?;
        let mut select = conn
            .prepare(
                "SELECT key, meta, created_ms, last_used_ms, hits, size FROM entries
                 WHERE ?1 IS NULL OR namespace = ?1",
            )
            .with_context(fail)?;
        let mut rows = select.query([namespace]).with_context(fail)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().with_context(fail)? {
            let key: Vec<u8> = row.get(0).with_context(fail)?;
            let Ok(key) = <[u8; 32]>::try_from(key.as_slice()).map(Key) else {
                continue;
            };
            let bytes: Vec<u8> = row.get(1).with_context(fail)?;
            // A corrupt entry is skipped here; a run that hits it discards it.
            let Ok(meta) = decode(&key, &bytes, row.get(2).with_context(fail)?) else {
                continue;
            };
            let mut prefix = [0u8; 8];
            prefix.copy_from_slice(&key.0[..8]);
            let hits = row.get::<_, i64>(4).with_context(fail)?.max(0) as u64
                + journal_hits.get(&prefix).copied().unwrap_or(0);
            let used_ms = row.get::<_, i64>(3).with_context(fail)?.max(0) as u64;
            let used = at(used_ms.max(journal_last.get(&prefix).copied().unwrap_or(0)) as i64);
            let last_used = if hits > 0 { used } else { meta.created() }.max(meta.created());
            out.push(Listed {
                meta,
                size: row.get::<_, i64>(5).with_context(fail)?.max(0) as u64,
                last_used,
                hits,
            });
        }
        Ok(out)
    }

    fn counter_rows(&self) -> Result<BTreeMap<String, Counters>> {
        let fail = || self.db.fail("read the counters");
        let conn = self.db.conn()?;
        let tx = conn.unchecked_transaction().with_context(fail)?;
        let mut out: BTreeMap<String, Counters> = BTreeMap::new();
        let u = |v: i64| v.max(0) as u64;
        if self.db.has_counters() {
            let mut select = tx
                .prepare(
                    "SELECT namespace, hits, misses, waits, stale_serves, saved_ms FROM counters",
                )
                .with_context(fail)?;
            let mut rows = select.query([]).with_context(fail)?;
            while let Some(r) = rows.next().with_context(fail)? {
                let c = out.entry(r.get(0).with_context(fail)?).or_default();
                c.hits = u(r.get(1).with_context(fail)?);
                c.misses = u(r.get(2).with_context(fail)?);
                c.waits = u(r.get(3).with_context(fail)?);
                c.stale_serves = u(r.get(4).with_context(fail)?);
                c.saved_ms = u(r.get(5).with_context(fail)?);
            }
        }
        let mut select = tx
            .prepare("SELECT namespace, count(*), total(size) FROM entries GROUP BY namespace")
            .with_context(fail)?;
        let mut rows = select.query([]).with_context(fail)?;
        while let Some(r) = rows.next().with_context(fail)? {
            let c = out.entry(r.get(0).with_context(fail)?).or_default();
            c.entries = u(r.get(1).with_context(fail)?);
            c.bytes = r.get::<_, f64>(2).with_context(fail)?.max(0.0) as u64;
        }
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        self.db.same_file()?;
        if self.db.empty()? {
            return Ok(None);
        }
        // One statement, one snapshot: the row and, for a small entry, its
        // output (a second statement would cost a prepare and a read
        // transaction, a tenth of a SQLite hit). Cached: the daemon keeps
        // the connection, and parsing it again was a third of its hit.
        let row = self.db.read(|conn| {
            conn.prepare_cached(LOOKUP)
                .and_then(|mut lookup| {
                    lookup
                        .query_row(params![&key.0[..], INLINE as i64], looked_up)
                        .optional()
                })
                .with_context(|| self.db.fail("look up an entry"))
        });
        let row = self.db.guard(row)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let meta = decode(key, &row.meta, row.created_ms)?;
        let body = row.body(&self.db, key, meta.body_len());
        Ok(Some(Found {
            meta,
            body,
            stale_after: None,
        }))
    }

    fn begin(&self, _key: &Key) -> Result<Box<dyn Spool>> {
        let dir = self.db.dir()?;
        let temp = || {
            tempfile::tempfile_in(&dir)
                .with_context(|| format!("cannot create a temp file in {}", dir.display()))
        };
        Ok(Box::new(SqliteSpool {
            db: Rc::clone(&self.db),
            stdout: temp()?,
            stderr: temp()?,
        }))
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        let me = &Holder::me();
        let dir = self.locks();
        make_dir(&dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        lock::claim(&self.lock_path(key), me)
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        lock::wait(&self.lock_path(key), timeout)
    }

    fn remove(&self, key: &Key, _namespace: &str) -> Result<u64> {
        self.db.write("remove an entry", |conn| {
            let found = conn
                .query_row(
                    "SELECT id, size FROM entries WHERE key = ?1",
                    [&key.0[..]],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )
                .optional()?;
            let Some((id, size)) = found else {
                return Ok(0);
            };
            conn.execute("DELETE FROM chunks WHERE entry = ?1", [id])?;
            conn.execute("DELETE FROM entries WHERE id = ?1", [id])?;
            Ok(size.max(0) as u64)
        })
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        if self.db.empty()? {
            return Ok(Vec::new());
        }
        self.db.guard(self.list_rows(namespace))
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        let dir = self.stats();
        journal::append(&dir, namespace, key, event.into())
            .with_context(|| format!("cannot count a run in {}", dir.display()))
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        let mut out = if self.db.empty()? {
            BTreeMap::new()
        } else {
            self.db.guard(self.counter_rows())?
        };
        for (ns, folded) in self.journals(None)? {
            let (c, j) = (out.entry(ns).or_default(), folded.counters);
            c.hits += j.hits;
            c.misses += j.misses;
            c.waits += j.waits;
            c.stale_serves += j.stale_serves;
            c.saved_ms += j.saved_ms;
        }
        Ok(out)
    }

    fn reset_counters(&self) -> Result<()> {
        let counters = self.db.conn().map(|_| self.db.has_counters())?;
        self.db.write("reset the counters", |conn| {
            if counters {
                conn.execute(
                    "UPDATE counters SET hits = 0, misses = 0, waits = 0, stale_serves = 0, saved_ms = 0",
                    [],
                )?;
            }
            conn.execute("UPDATE entries SET hits = 0", [])?;
            Ok(())
        })?;
        let dir = self.stats();
        journal::reset(&dir)
            .with_context(|| format!("cannot reset the counters in {}", dir.display()))
    }

    fn clear_claims(&self) -> Result<u64> {
        lock::clear_dead(&self.locks())
    }

    /// Read-only found no tables (a daemon must not keep that answer).
    fn remembers_absence(&self) -> bool {
        self.db.found_schemaless()
    }

    fn location(&self) -> String {
        self.db.path.display().to_string()
    }

    /// Drop the chunks of writes killed over an hour ago, and give the pages
    /// of removed entries back to the file system.
    fn sweep(&self) -> Result<()> {
        body::sweep_pending(&self.db, (crate::entry::now_ms() as i64) - 3_600_000)?;
        let fail = || self.db.fail("sweep");
        let conn = self.db.conn()?;
        for pragma in [
            "PRAGMA incremental_vacuum",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            let mut stmt = conn.prepare(pragma).with_context(fail)?;
            let mut rows = stmt.query([]).with_context(fail)?;
            while rows.next().with_context(fail)?.is_some() {}
        }
        Ok(())
    }

    /// A mark file in `<db>.marks/`, not a row: a hit with
    /// `--cleanup-stale` then never writes to the database.
    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let dir = self.marks();
        kit::once_per(&dir, what, interval)
            .with_context(|| format!("cannot rate-limit background work in {}", dir.display()))
    }
}
