//! The PostgreSQL half of the `sql` store, over the synchronous `postgres` client.
//!
//! ```text
//! cachier_schema_version(version)                      one row; a newer one is refused
//! cachier_entries(key, namespace, meta, created_ms, last_used_ms, hits, size)
//! cachier_chunks(key, seq, data)                       the body, stdout then stderr, ≤ 1 MiB a row
//! cachier_counters(namespace, hits, misses, waits, stale_serves, saved_ms)
//! cachier_claims(key, host, pid)                       who computes, for the spinner
//! cachier_marks(what, at_ms)                           rate limits of background clean-up
//! ```
//! Nothing connects until the first call, and a connection attempt gives up
//! after [`CONNECT_TIMEOUT`]. `created_ms` is authoritative for an entry's age.
//! Single-flight is a session advisory lock held on the owner's own
//! connection (see `claim.rs`), so a dead owner is noticed at once: the
//! server drops the lock when the session's socket closes. TLS follows
//! the URL's `sslmode` (see `tls.rs`).
mod body;
mod claim;
mod tls;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use ::postgres::config::SslMode;
use ::postgres::error::SqlState;
use ::postgres::{Client, Config, NoTls};
use anyhow::{Context, Result, anyhow};

use crate::entry::{Event, Meta, millis_since_epoch};
use crate::key::Key;
use crate::store::{Claim, Counters, Found, Holder, Listed, Spool, Store};

/// How long one connection attempt may take before the run goes on uncached.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The schema this build writes; a database with a newer one is refused.
const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cachier_schema_version (version int NOT NULL);
CREATE TABLE IF NOT EXISTS cachier_entries (
    key bytea PRIMARY KEY,
    namespace text NOT NULL,
    meta bytea NOT NULL,
    created_ms bigint NOT NULL,
    last_used_ms bigint NOT NULL,
    hits bigint NOT NULL DEFAULT 0,
    size bigint NOT NULL);
CREATE INDEX IF NOT EXISTS cachier_entries_namespace ON cachier_entries (namespace);
CREATE TABLE IF NOT EXISTS cachier_chunks (
    key bytea NOT NULL,
    seq int NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (key, seq));
-- Output is often already compressed or incompressible: store it as is.
ALTER TABLE cachier_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS cachier_counters (
    namespace text PRIMARY KEY,
    hits bigint NOT NULL DEFAULT 0,
    misses bigint NOT NULL DEFAULT 0,
    waits bigint NOT NULL DEFAULT 0,
    stale_serves bigint NOT NULL DEFAULT 0,
    saved_ms bigint NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS cachier_claims (
    key bytea PRIMARY KEY,
    host text NOT NULL,
    pid bigint NOT NULL);
CREATE TABLE IF NOT EXISTS cachier_marks (what text PRIMARY KEY, at_ms bigint NOT NULL);
INSERT INTO cachier_schema_version
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM cachier_schema_version);
";

/// The store's state, shared with its spools and fetches.
type Shared = Rc<Inner>;

// One per process: boxing the client would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Conn {
    Unopened,
    Open(Client),
    /// The first attempt failed: later calls fail the same way at once, so a
    /// dead server costs a run one timeout, not one per call.
    Failed(String),
}

pub struct Inner {
    config: Result<Config, String>,
    verify: tls::Verify,
    /// `postgresql://host:port/db`, for messages (never the password).
    place: String,
    /// The main connection, made on first use.
    conn: RefCell<Conn>,
}

pub struct PgStore(Shared);

impl PgStore {
    /// Parse `url`; no I/O happens until the store is used.
    pub fn open(url: &str) -> PgStore {
        let (url, verify) = tls::split_sslmode(url);
        let config = Config::from_str(&url).map_err(|e| format!("bad PostgreSQL URL: {e}"));
        let place = match &config {
            Ok(c) => place(c),
            Err(_) => "PostgreSQL (unparsable URL)".to_string(),
        };
        let config = config.map(|mut c| {
            c.connect_timeout(CONNECT_TIMEOUT);
            c
        });
        PgStore(Rc::new(Inner {
            config,
            verify,
            place,
            conn: RefCell::new(Conn::Unopened),
        }))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        self.0.with(f)
    }
}

impl Inner {
    /// A new session, e.g. the one an owner holds its claim on.
    fn connect(&self) -> Result<Client> {
        let config = self.config.as_ref().map_err(|e| anyhow!("{e}"))?;
        let client = match config.get_ssl_mode() {
            SslMode::Disable => config.connect(NoTls),
            _ => config.connect(tls::connector(self.verify)?),
        };
        client.with_context(|| format!("cannot reach PostgreSQL at {}", self.place))
    }

    /// Run `f` on the main connection, opening it (and the schema) first. A
    /// failed operation on a broken connection drops it, so the next call
    /// starts afresh.
    pub fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.borrow_mut();
        if let Conn::Failed(why) = &*conn {
            return Err(anyhow!("{why}"));
        }
        if let Conn::Unopened = &*conn {
            match self.open_main() {
                Ok(client) => *conn = Conn::Open(client),
                Err(e) => {
                    *conn = Conn::Failed(format!("{e:#}"));
                    return Err(e);
                }
            }
        }
        let Conn::Open(client) = &mut *conn else {
            unreachable!("opened above")
        };
        let out = f(client);
        if out.is_err() && client.is_closed() {
            *conn = Conn::Unopened;
        }
        out
    }

    fn open_main(&self) -> Result<Client> {
        let mut client = self.connect()?;
        ensure_schema(&mut client)
            .with_context(|| format!("cannot set up the cache tables at {}", self.place))?;
        Ok(client)
    }
}

fn place(c: &Config) -> String {
    let host = match c.get_hosts().first() {
        Some(::postgres::config::Host::Tcp(h)) => h.clone(),
        Some(::postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c.get_dbname().or(c.get_user()).unwrap_or("postgres");
    format!("postgresql://{host}:{port}/{db}")
}

/// Create the tables once, under a lock so concurrent first runs agree;
/// refuse a schema newer than this build knows.
fn ensure_schema(client: &mut Client) -> Result<()> {
    // One round trip once the tables exist, which is every run but the first.
    let version: Option<i32> = match client.query_one(VERSION, &[]) {
        Ok(row) => row.get(0),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(1667327080, 0)", &[])?;
            tx.batch_execute(SCHEMA)?;
            tx.commit()?;
            client.query_one(VERSION, &[])?.get(0)
        }
        Err(e) => return Err(e.into()),
    };
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(anyhow!(
            "the database has cachier schema version {v}, newer than this cachier's \
             {SCHEMA_VERSION}; upgrade cachier or point --sql-url at another database"
        )),
        _ => Ok(()),
    }
}

const VERSION: &str = "SELECT max(version) FROM cachier_schema_version";

pub(crate) fn now_ms() -> i64 {
    millis_since_epoch(SystemTime::now()) as i64
}

/// The entry's metadata from its row; `created_ms` is the row's.
fn decode(key: &Key, bytes: &[u8], created_ms: i64) -> Result<Meta, crate::entry::Corrupt> {
    let bad = |why: &str| crate::entry::Corrupt {
        key: key.short(),
        why: why.to_string(),
    };
    let mut meta: Meta = ciborium::from_reader(bytes).map_err(|_| bad("unreadable metadata"))?;
    if &meta.key != key {
        return Err(bad("stored under the wrong key"));
    }
    meta.created_ms = created_ms.max(0) as u64;
    Ok(meta)
}

impl Store for PgStore {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        let row = self.with(|c| {
            Ok(c.query_opt(
                "SELECT meta, created_ms FROM cachier_entries WHERE key = $1",
                &[&&key.0[..]],
            )?)
        })?;
        let Some(row) = row else { return Ok(None) };
        let meta = decode(key, row.get(0), row.get(1))?;
        let want = meta.stdout_len + meta.stderr_len;
        Ok(Some(Found {
            meta,
            body: Box::new(body::PgBody {
                store: self.0.clone(),
                key: *key,
                want,
            }),
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        Ok(Box::new(body::PgSpool::new(self.0.clone(), *key)?))
    }

    fn claim(&self, key: &Key, me: &Holder) -> Result<Claim> {
        // The main connection first: it makes the tables the claim row needs.
        self.with(|_| Ok(()))?;
        let session = self.0.connect()?;
        let claim = claim::claim(session, key, me)?;
        if let Claim::Busy(None) = claim {
            return self.with(|c| Ok(Claim::Busy(claim::holder(c, key)?)));
        }
        Ok(claim)
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        self.with(|c| claim::wait(c, key, timeout))
    }

    fn remove(&self, key: &Key, _namespace: &str) -> Result<u64> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let size: Option<i64> = tx
                .query_opt(
                    "DELETE FROM cachier_entries WHERE key = $1 RETURNING size",
                    &[&&key.0[..]],
                )?
                .map(|r| r.get(0));
            tx.execute("DELETE FROM cachier_chunks WHERE key = $1", &[&&key.0[..]])?;
            tx.commit()?;
            Ok(size.unwrap_or(0).max(0) as u64)
        })
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        let rows = self.with(|c| {
            Ok(c.query(
                "SELECT key, meta, created_ms, last_used_ms, hits, size FROM cachier_entries \
                 WHERE $1::text IS NULL OR namespace = $1",
                &[&namespace],
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
        let mut n = [0i64; 5]; // hits, misses, waits, stale serves, saved ms
        match event {
            Event::Hit { saved } => n = [1, 0, 0, 0, saved.as_millis() as i64],
            Event::Miss => n[1] = 1,
            Event::Wait => n[2] = 1,
            Event::StaleServe => n[3] = 1,
        }
        let hit = matches!(event, Event::Hit { .. });
        // One statement: concurrent callers add, nobody reads then writes.
        self.with(|c| {
            c.execute(
                "WITH used AS (UPDATE cachier_entries SET hits = hits + 1, last_used_ms = $8 \
                   WHERE $7 AND key = $2) \
                 INSERT INTO cachier_counters AS c \
                   (namespace, hits, misses, waits, stale_serves, saved_ms) \
                   VALUES ($1, $3, $4, $5, $6, $9) \
                 ON CONFLICT (namespace) DO UPDATE SET hits = c.hits + excluded.hits, \
                   misses = c.misses + excluded.misses, waits = c.waits + excluded.waits, \
                   stale_serves = c.stale_serves + excluded.stale_serves, \
                   saved_ms = c.saved_ms + excluded.saved_ms",
                &[
                    &namespace,
                    &&key.0[..],
                    &n[0],
                    &n[1],
                    &n[2],
                    &n[3],
                    &hit,
                    &now_ms(),
                    &n[4],
                ],
            )?;
            Ok(())
        })
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        self.with(|c| {
            let mut out: BTreeMap<String, Counters> = BTreeMap::new();
            let get = |row: &::postgres::Row, i| row.get::<_, i64>(i).max(0) as u64;
            for row in c.query(
                "SELECT namespace, hits, misses, waits, stale_serves, saved_ms \
                 FROM cachier_counters",
                &[],
            )? {
                let counters = out.entry(row.get(0)).or_default();
                counters.hits = get(&row, 1);
                counters.misses = get(&row, 2);
                counters.waits = get(&row, 3);
                counters.stale_serves = get(&row, 4);
                counters.saved_ms = get(&row, 5);
            }
            for row in c.query(
                "SELECT namespace, count(*), coalesce(sum(size), 0)::bigint \
                 FROM cachier_entries GROUP BY namespace",
                &[],
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
            c.batch_execute(
                "UPDATE cachier_counters SET hits = 0, misses = 0, waits = 0, \
                   stale_serves = 0, saved_ms = 0; \
                 UPDATE cachier_entries SET hits = 0 WHERE hits <> 0;",
            )?;
            Ok(())
        })
    }

    fn clear_claims(&self) -> Result<u64> {
        self.with(claim::clear)
    }

    fn location(&self) -> String {
        self.0.place.clone()
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let now = now_ms();
        let cutoff = now - interval.as_millis() as i64;
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
