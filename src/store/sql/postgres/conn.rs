//! The store's session: opened on first use, with the tables made (or a
//! newer schema refused) before anything else runs on it.
use std::cell::Cell;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use super::session::{CONNECT_TIMEOUT, PgError, Session};
use super::tls;
use crate::store::breaker::outage;
use crate::store::lazy::{After, Lazy};

/// A dead host or a cut network under an idle session (an owner's, while
/// its command runs) is noticed by the kernel within this: TCP keepalives
/// probe it, and unacknowledged data times out. A live server that stops
/// answering is the statements' deadlines' business (see `session.rs`).
const SILENT_HOST: Duration = Duration::from_secs(15);
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

pub struct Inner {
    config: Result<Config, String>,
    verify: tls::Verify,
    /// `postgresql://host:port/db`, for messages (never the password).
    place: Rc<str>,
    /// The main connection, made on first use.
    conn: Lazy<Session>,
    /// Read-only: the tables are never created; a database without them
    /// is an empty cache.
    read_only: bool,
    schemaless: Cell<bool>,
}

impl Inner {
    /// Parse `url`; no I/O happens here.
    pub fn new(url: &str, read_only: bool) -> Inner {
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
            // (socket.rs applies these; connecting has its own deadlines.)
            c.keepalives(true)
                .keepalives_idle(Duration::from_secs(5))
                .keepalives_interval(Duration::from_secs(2))
                .keepalives_retries(3)
                .tcp_user_timeout(SILENT_HOST);
            c
        });
        Inner {
            config,
            verify,
            place: place.into(),
            conn: Lazy::default(),
            read_only,
            schemaless: Cell::new(false),
        }
    }

    /// Whether the database has no cachier tables (read-only found none).
    pub fn schemaless(&self) -> Result<bool> {
        self.with(|_| Ok(()))?;
        Ok(self.schemaless.get())
    }

    /// Whether a use found no tables, without connecting to ask.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // (the pool is Linux's)
    pub fn found_schemaless(&self) -> bool {
        self.schemaless.get()
    }

    /// `postgresql://host:port/db`, never with the password.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Whether the server stopped answering (or could not be reached): the
    /// store has given up on it for this process.
    pub fn gave_up(&self) -> bool {
        self.conn.gave_up()
    }

    /// A new session.
    fn connect(&self) -> Result<Session> {
        let config = self.config.as_ref().map_err(|e| anyhow!("{e}"))?;
        let session = match config.get_ssl_mode() {
            SslMode::Disable => Session::connect(&self.place, config, NoTls),
            _ => Session::connect(&self.place, config, tls::connector(self.verify)?),
        };
        // Refused, silent, TLS or authentication: an outage.
        session
            .with_context(|| format!("cannot reach PostgreSQL at {}", self.place))
            .map_err(outage)
    }

    /// Run `f` on the main connection, opening it (and the schema) first. A
    /// failed operation on a closed connection drops it, so the next call
    /// starts afresh; one on a server that stopped answering gives the
    /// server up for the rest of the process.
    pub fn with<T>(&self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        self.conn.with(
            || self.open_main(),
            |session| {
                // The client's own errors ("connection closed") do not say
                // which server; ours (a silent server, a newer schema) do.
                f(session).map_err(|e| {
                    let e = match e.downcast_ref::<PgError>() {
                        Some(PgError::Db(_)) => e.context(format!("PostgreSQL at {}", self.place)),
                        _ => e,
                    };
                    let after = if session.went_silent() {
                        After::GiveUp
                    } else if session.is_broken() {
                        After::Reopen
                    } else {
                        After::Keep
                    };
                    (e, after)
                })
            },
        )
    }

    fn open_main(&self) -> Result<Session> {
        let mut session = self.connect()?;
        let present = ensure_schema(&mut session, !self.read_only)
            .with_context(|| format!("cannot set up the cache tables at {}", self.place))?;
        self.schemaless.set(!present);
        Ok(session)
    }
}

fn place(c: &Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c.get_dbname().or(c.get_user()).unwrap_or("postgres");
    format!("postgresql://{host}:{port}/{db}")
}

/// Create the tables once (if `create`), under a lock so concurrent first
/// runs agree; refuse a schema newer than this build knows. Whether the
/// tables are there.
fn ensure_schema(s: &mut Session, create: bool) -> Result<bool> {
    // One round trip once the tables exist, which is every run but the first
    // (typed: no separate prepare);
    // part of connecting, it has connecting's deadline (a run that starts
    // waits at most 2 s for a server that hangs).
    let version: Option<i32> = match s
        .d
        .within(CONNECT_TIMEOUT, s.client.query_typed_one(VERSION, &[]))
    {
        Ok(row) => row.get(0),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) && !create => return Ok(false),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
            let tx = s.d.run(s.client.transaction())?;
            s.d.run(tx.execute("SELECT pg_advisory_xact_lock(1667327080, 0)", &[]))?;
            s.d.run(tx.batch_execute(SCHEMA))?;
            s.d.run(tx.commit())?;
            s.query_one(VERSION, &[])?.get(0)
        }
        Err(e) => return Err(e.into()),
    };
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(anyhow!(
            "the database has cachier schema version {v}, newer than this cachier's \
             {SCHEMA_VERSION}; upgrade cachier or point --sql-url at another database"
        )),
        _ => Ok(true),
    }
}

const VERSION: &str = "SELECT max(version) FROM cachier_schema_version";
