//! The store's client: a tokio runtime and a MongoDB client made on first
//! use, every operation bounded by a timeout, an unreachable server given
//! up for the rest of the process, and messages that never hold the
//! password.
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Result, anyhow};
use mongodb::bson::{Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use tokio::runtime::Runtime;

pub use super::failure::Failure;
use super::url::Parsed;
use crate::store::breaker::outage;
use crate::store::lazy::Lazy;

/// How long finding and connecting to a server may take (a closed port, a
/// host that does not answer) before the run goes on uncached: the driver's
/// server selection and connect timeouts. A closed port costs all of it,
/// since the driver retries until then.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long one operation may take once connected: a server that stops
/// answering mid-operation is given up after this.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// The store's state, shared with its spools, fetches and leases.
pub type Shared = Rc<Inner>;

/// The collections of one store (cheap handles to one client).
#[derive(Clone)]
pub struct Colls {
    /// One document per entry, `_id` = the key.
    pub entries: Collection<Document>,
    /// Output chunks, keyed by (key, gen, seq).
    pub chunks: Collection<Document>,
    /// Single-flight claims, `_id` = the key.
    pub claims: Collection<Document>,
    /// Per-namespace counters, `_id` = the namespace.
    pub counters: Collection<Document>,
    /// Rate limits of background clean-up, `_id` = what.
    pub marks: Collection<Document>,
}

pub struct Inner {
    url: String,
    parsed: Parsed,
    coll: String,
    /// Entries get a TTL from this (see `body.rs`).
    pub stale_after: Option<Duration>,
    /// The client's collections, made on first use; an unreachable server
    /// fails this and every later call at once.
    conn: Lazy<Colls>,
    indexed: Cell<bool>,
}

/// One runtime per process, made on first use and never torn down: its one
/// worker runs the driver's monitors and the lease heartbeat.
pub fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    thread_local! {
        static ENTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cachier-mongo")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the MongoDB client's runtime: {e}"))
    });
    let rt = rt.as_ref().map_err(|e| anyhow!("{e}"))?;
    // The driver spawns tasks when its objects drop (closing cursors,
    // ending sessions), so every thread that uses it (the daemon's
    // workers, for pooled connections) stays inside the runtime for good.
    if !ENTERED.get() {
        std::mem::forget(rt.enter());
        ENTERED.set(true);
    }
    Ok(rt)
}

/// Run `fut` to completion on the store's runtime, within `limit`.
pub fn block_on<T>(
    limit: Duration,
    fut: impl Future<Output = mongodb::error::Result<T>>,
) -> Result<T, Failure> {
    let rt = runtime().map_err(|e| Failure::Other(format!("{e:#}")))?;
    match rt.block_on(tokio::time::timeout(limit, fut)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::from(e)),
        Err(_) => Err(Failure::Unreachable(format!(
            "no answer within {} s",
            limit.as_secs()
        ))),
    }
}

impl Inner {
    /// Keep `url`; no I/O happens here.
    pub fn new(url: &str, parsed: Parsed, coll: &str, stale_after: Option<Duration>) -> Inner {
        Inner {
            url: url.to_string(),
            parsed,
            coll: coll.to_string(),
            stale_after,
            conn: Lazy::default(),
            indexed: Cell::new(false),
        }
    }

    /// `mongodb://host:port/db`, never with the password.
    pub fn place(&self) -> &str {
        &self.parsed.place
    }

    pub fn collection(&self) -> &str {
        &self.coll
    }

    /// Run the operation `f` makes on the store's collections, connecting
    /// first. An unreachable server fails this and every later call.
    pub fn with<T, F>(&self, f: impl FnOnce(Colls) -> F) -> Result<T>
    where
        F: Future<Output = mongodb::error::Result<T>>,
    {
        self.with_limit(OP_TIMEOUT, f)
    }

    /// Like [`Inner::with`], a duplicate-key refusal as `Ok(None)`.
    pub fn try_insert<T, F>(&self, f: impl FnOnce(Colls) -> F) -> Result<Option<T>>
    where
        F: Future<Output = mongodb::error::Result<T>>,
    {
        let colls = self.colls()?;
        match block_on(OP_TIMEOUT, f(colls)) {
            Ok(v) => Ok(Some(v)),
            Err(Failure::Duplicate) => Ok(None),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Run an upsert, once more if a concurrent upsert of the same `_id`
    /// made it fail on the unique index (the document exists now).
    pub fn upsert<T, F>(&self, f: impl Fn(Colls) -> F) -> Result<T>
    where
        F: Future<Output = mongodb::error::Result<T>>,
    {
        match self.try_insert(&f)? {
            Some(v) => Ok(v),
            None => self.with(f),
        }
    }

    pub fn with_limit<T, F>(&self, limit: Duration, f: impl FnOnce(Colls) -> F) -> Result<T>
    where
        F: Future<Output = mongodb::error::Result<T>>,
    {
        let colls = self.colls()?;
        block_on(limit, f(colls)).map_err(|e| self.failed(e))
    }

    /// The error for `failure`, remembering an unreachable server.
    pub fn failed(&self, failure: Failure) -> anyhow::Error {
        let text = match failure {
            Failure::Unreachable(why) => {
                let text = self.scrub(&format!("cannot reach MongoDB at {}: {why}", self.place()));
                self.conn.give_up(text.clone());
                return outage(anyhow!("{text}"));
            }
            Failure::Duplicate => format!("MongoDB at {}: duplicate key", self.place()),
            Failure::Other(why) => self.scrub(&format!("MongoDB at {}: {why}", self.place())),
        };
        anyhow!("{text}")
    }

    /// `text` without the URL's password, whatever a driver message held.
    fn scrub(&self, text: &str) -> String {
        match &self.parsed.password {
            Some(pw) => text.replace(pw.as_str(), "***"),
            None => text.to_string(),
        }
    }

    /// The collections, making the client on first use.
    pub fn colls(&self) -> Result<Colls> {
        let open = || {
            self.open().map_err(|e| {
                outage(anyhow!(
                    "{}",
                    self.scrub(&format!("cannot reach MongoDB at {}: {e}", self.place()))
                ))
            })
        };
        self.conn.with(open, |colls| Ok(colls.clone()))
    }

    fn open(&self) -> Result<Colls, String> {
        let url = self.url.clone();
        let client = block_on(OP_TIMEOUT, async move {
            let mut options = ClientOptions::parse(&url).await?;
            options.connect_timeout = Some(CONNECT_TIMEOUT);
            options.server_selection_timeout = Some(CONNECT_TIMEOUT);
            options.app_name = Some("cachier".to_string());
            Client::with_options(options)
        })
        .map_err(|e| match e {
            Failure::Unreachable(why) | Failure::Other(why) => why,
            Failure::Duplicate => "duplicate key".to_string(),
        })?;
        let db = client.database(&self.parsed.db);
        let name = |suffix: &str| format!("{}{suffix}", self.coll);
        Ok(Colls {
            entries: db.collection(&self.coll),
            chunks: db.collection(&name(".chunks")),
            claims: db.collection(&name(".claims")),
            counters: db.collection(&name(".counters")),
            marks: db.collection(&name(".marks")),
        })
    }

    /// Create the indexes, once per process, before this process writes an
    /// entry: a process that only reads needs none it did not find.
    pub fn ensure_indexes(&self) -> Result<()> {
        if self.indexed.get() {
            return Ok(());
        }
        self.with(|c| async move {
            let ttl = |field: &str, after: Duration| {
                IndexModel::builder()
                    .keys(doc! { field: 1 })
                    .options(IndexOptions::builder().expire_after(after).build())
                    .build()
            };
            let plain = |keys: Document, unique: bool| {
                IndexModel::builder()
                    .keys(keys)
                    .options(IndexOptions::builder().unique(unique).build())
                    .build()
            };
            c.entries
                .create_indexes([
                    plain(doc! { "ns": 1 }, false),
                    ttl("expires_at", Duration::ZERO),
                ])
                .await?;
            c.chunks
                .create_indexes([
                    plain(doc! { "key": 1, "gen": 1, "seq": 1 }, true),
                    plain(doc! { "gen": 1 }, false),
                    ttl("expires_at", Duration::ZERO),
                ])
                .await?;
            // A claim left by a dead owner goes an hour after its lease.
            c.claims
                .create_index(ttl("lease_until", Duration::from_secs(3600)))
                .await?;
            Ok(())
        })?;
        self.indexed.set(true);
        Ok(())
    }
}
