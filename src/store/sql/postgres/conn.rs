//! The store's session: opened on first use, with the tables made (or a
//! newer schema refused) before anything else runs on it.
use std::cell::RefCell;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;

use ::postgres::config::SslMode;
use ::postgres::error::SqlState;
use ::postgres::{Client, Config, NoTls};
use anyhow::{Context, Result, anyhow};

use super::tls;

/// How long one connection attempt may take before the run goes on uncached.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A server that stops answering mid-operation (a dead host, a cut
/// network) is given up after this: TCP keepalives probe an idle session,
/// as a waiter's is, and unacknowledged data times out.
pub const SILENT_SERVER: Duration = Duration::from_secs(15);
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
pub type Shared = Rc<Inner>;

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

impl Inner {
    /// Parse `url`; no I/O happens here.
    pub fn new(url: &str) -> Inner {
        let (url, verify) = tls::split_sslmode(url);
        let config = Config::from_str(&url).map_err(|e| format!("bad PostgreSQL URL: {e}"));
        let place = match &config {
            Ok(c) => place(c),
            Err(_) => "PostgreSQL (unparsable URL)".to_string(),
        };
        let config = config.map(|mut c| {
            // A cache can lose its last commits in a server crash (they come
            // back as misses), so no commit waits for the server's fsync:
            // that wait was ~1 ms of every hit. A startup option, so it
            // costs no round trip; the URL's own options are kept.
            let options = match c.get_options() {
                Some(given) => format!("{given} -c synchronous_commit=off"),
                None => "-c synchronous_commit=off".to_string(),
            };
            c.options(&options);
            c.connect_timeout(CONNECT_TIMEOUT)
                .keepalives(true)
                .keepalives_idle(Duration::from_secs(5))
                .keepalives_interval(Duration::from_secs(2))
                .keepalives_retries(3)
                .tcp_user_timeout(SILENT_SERVER);
            c
        });
        Inner {
            config,
            verify,
            place,
            conn: RefCell::new(Conn::Unopened),
        }
    }

    /// `postgresql://host:port/db`, never with the password.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// A new session, e.g. the one an owner holds its claim on.
    pub fn connect(&self) -> Result<Client> {
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
