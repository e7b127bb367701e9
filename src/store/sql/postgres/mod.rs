//! The PostgreSQL half of the `sql` store, over tokio-postgres driven step
//! by step (see `session.rs`).
//!
//! ```text
//! cachier_schema_version(version)                      one row; a newer one is refused
//! cachier_entries(key, namespace, meta, created_ms, last_used_ms, hits, size)
//! cachier_chunks(key, seq, data)                       the body, stdout then stderr, ≤ 1 MiB a row
//! cachier_counters(namespace, hits, misses, waits, stale_serves, saved_ms)
//! cachier_claims(key, host, pid)                       who computes, for the spinner
//! cachier_marks(what, at_ms)                           rate limits of background clean-up
//! ```
//! Nothing connects until the first call. Every network step has a deadline
//! (see `session.rs`): each step of connecting (TCP, TLS, startup,
//! authentication, then the schema check) 2 s without an answer, each
//! statement or row 5 s with no byte moving (60 s for one over the whole
//! cache), a waiter's lock request 2 s at a time; a server that went silent
//! is not asked again by the process.
//! `created_ms` is authoritative for an entry's age.
//! Single-flight is a session advisory lock held on the owner's
//! connection (see `claim.rs`), so a dead owner is noticed at once: the
//! server drops the lock when the session's socket closes. TLS follows
//! the URL's `sslmode` (see `tls.rs`).
mod body;
mod claim;
mod conn;
mod session;
mod socket;
mod tls;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use tokio_postgres::types::Type;

use conn::{Inner, Shared};
use session::{SCAN_TIMEOUT, Session};

use super::decode_row as decode;
use crate::entry::Event;
use crate::key::Key;
use crate::store::{Claim, Counters, Found, Holder, Listed, Spool, Store};

/// The connection, and how bodies are sent.
pub struct PgStore(Shared, crate::entry::Encoding);

impl PgStore {
    /// Parse `url`; no I/O happens until the store is used.
    pub fn open(url: &str, read_only: bool, compression: crate::entry::Encoding) -> PgStore {
        PgStore(Rc::new(Inner::new(url, read_only)), compression)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        self.0.with(f)
    }
}

impl Store for PgStore {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        if self.0.schemaless()? {
            return Ok(None);
        }
        let row = self.with(|c| {
            Ok(c.query_typed_opt(
                "SELECT meta, created_ms FROM cachier_entries WHERE key = $1",
                &[(&&key.0[..], Type::BYTEA)],
            )?)
        })?;
        let Some(row) = row else { return Ok(None) };
        let meta = decode(key, row.get(0), row.get(1))?;
        let want = meta.body_len();
        let encoding = meta.encoding;
        Ok(Some(Found {
            meta,
            body: Box::new(body::PgBody {
                store: self.0.clone(),
                key: *key,
                want,
                encoding,
            }),
            stale_after: None,
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        Ok(Box::new(body::PgSpool::new(self.0.clone(), *key, self.1)?))
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        let me = &Holder::me();
        if self.with(|c| claim::claim(c, key, me))? {
            return Ok(Claim::Owner(Box::new(claim::PgLease {
                store: self.0.clone(),
                key: *key,
            })));
        }
        self.with(|c| Ok(Claim::Busy(claim::holder(c, key)?)))
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        self.with(|c| claim::wait(c, key, timeout))
    }

    fn remove(&self, key: &Key, _namespace: &str) -> Result<u64> {
        self.with(|c| {
            let tx = c.d.run(c.client.transaction())?;
            let size: Option<i64> =
                c.d.run(tx.query_opt(
                    "DELETE FROM cachier_entries WHERE key = $1 RETURNING size",
                    &[&&key.0[..]],
                ))?
                .map(|r| r.get(0));
            c.d.run(tx.execute("DELETE FROM cachier_chunks WHERE key = $1", &[&&key.0[..]]))?;
            c.d.run(tx.commit())?;
            Ok(size.unwrap_or(0).max(0) as u64)
        })
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        if self.0.schemaless()? {
            return Ok(Vec::new());
        }
        let rows = self.with(|c| {
            Ok(c.d.within(
                SCAN_TIMEOUT,
                c.client.query(
                    "SELECT key, meta, created_ms, last_used_ms, hits, size \
                     FROM cachier_entries WHERE $1::text IS NULL OR namespace = $1",
                    &[&namespace],
                ),
            )?)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let Ok(key) = <[u8; 32]>::try_from(row.get::<_, &[u8]>(0)) else {
                continue;
            };
            // A corrupt entry is skipped here; a run that hits it discards it.
            let Ok(meta) = decode(&Key(key), row.get(1), row.get(2)) else {
                continue;
            };
            let hits = row.get::<_, i64>(4).max(0) as u64;
            let used: i64 = row.get(3);
            let last_used_ms = if hits > 0 { used } else { 0 }.max(row.get(2)).max(0);
            out.push(Listed {
                meta,
                size: row.get::<_, i64>(5).max(0) as u64,
                last_used: SystemTime::UNIX_EPOCH + Duration::from_millis(last_used_ms as u64),
                hits,
            });
        }
        Ok(out)
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        self.record_sum(namespace, key, event.deltas())
    }

    fn record_sum(&self, namespace: &str, key: &Key, n: [i64; 5]) -> Result<()> {
        // n: hits, misses, waits, stale serves, saved ms.
        let hit = n[0] > 0;
        // One statement: concurrent callers add, nobody reads then writes.
        self.with(|c| {
            c.execute_typed(
                "WITH used AS (UPDATE cachier_entries SET hits = hits + $3, last_used_ms = $8 \
                   WHERE $7 AND key = $2) \
                 INSERT INTO cachier_counters AS c \
                   (namespace, hits, misses, waits, stale_serves, saved_ms) \
                   VALUES ($1, $3, $4, $5, $6, $9) \
                 ON CONFLICT (namespace) DO UPDATE SET hits = c.hits + excluded.hits, \
                   misses = c.misses + excluded.misses, waits = c.waits + excluded.waits, \
                   stale_serves = c.stale_serves + excluded.stale_serves, \
                   saved_ms = c.saved_ms + excluded.saved_ms",
                &[
                    (&namespace, Type::TEXT),
                    (&&key.0[..], Type::BYTEA),
                    (&n[0], Type::INT8),
                    (&n[1], Type::INT8),
                    (&n[2], Type::INT8),
                    (&n[3], Type::INT8),
                    (&hit, Type::BOOL),
                    (&(crate::entry::now_ms() as i64), Type::INT8),
                    (&n[4], Type::INT8),
                ],
            )?;
            Ok(())
        })
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        if self.0.schemaless()? {
            return Ok(BTreeMap::new());
        }
        self.with(|c| {
            let mut out: BTreeMap<String, Counters> = BTreeMap::new();
            let get = |row: &tokio_postgres::Row, i| row.get::<_, i64>(i).max(0) as u64;
            for row in c.d.within(
                SCAN_TIMEOUT,
                c.client.query(
                    "SELECT namespace, hits, misses, waits, stale_serves, saved_ms \
                     FROM cachier_counters",
                    &[],
                ),
            )? {
                let counters = out.entry(row.get(0)).or_default();
                counters.hits = get(&row, 1);
                counters.misses = get(&row, 2);
                counters.waits = get(&row, 3);
                counters.stale_serves = get(&row, 4);
                counters.saved_ms = get(&row, 5);
            }
            for row in c.d.within(
                SCAN_TIMEOUT,
                c.client.query(
                    "SELECT namespace, count(*), coalesce(sum(size), 0)::bigint \
                     FROM cachier_entries GROUP BY namespace",
                    &[],
                ),
            )? {
                let counters = out.entry(row.get(0)).or_default();
                counters.entries = get(&row, 1);
                counters.bytes = get(&row, 2);
            }
            Ok(out)
        })
    }

    fn reset_counters(&self) -> Result<()> {
        self.with(|c| {
            c.d.within(
                SCAN_TIMEOUT,
                c.client.batch_execute(
                    "UPDATE cachier_counters SET hits = 0, misses = 0, waits = 0, \
                       stale_serves = 0, saved_ms = 0; \
                     UPDATE cachier_entries SET hits = 0 WHERE hits <> 0;",
                ),
            )?;
            Ok(())
        })
    }

    fn clear_claims(&self) -> Result<u64> {
        self.with(claim::clear)
    }

    fn remembers_absence(&self) -> bool {
        self.0.found_schemaless()
    }

    fn location(&self) -> String {
        self.0.place().to_string()
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let now = crate::entry::now_ms() as i64;
        let cutoff = now.saturating_sub(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX));
        // One conditional upsert: of racing callers exactly one changes the row.
        self.with(|c| {
            let changed = c.execute(
                "INSERT INTO cachier_marks AS m (what, at_ms) VALUES ($1, $2) \
                 ON CONFLICT (what) DO UPDATE SET at_ms = excluded.at_ms WHERE m.at_ms <= $3",
                &[&what, &now, &cutoff],
            )?;
            Ok(changed == 1)
        })
    }
}
