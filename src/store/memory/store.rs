//! The memory store itself: the client side of the daemon protocol, a
//! connection made on first use (see the backend's `mod.rs`).
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, anyhow};

use super::{MemoryConfig, body};
use crate::entry::{Event, Meta};
use crate::key::Key;
use crate::store::memory::daemon::client::{self, Conn, Start, unexpected};
use crate::store::memory::daemon::{paths, proto::Ev, proto::Req, proto::Resp};
use crate::store::param::{Common, Section};
use crate::store::{Claim, Counters, Found, Holder, Lease, Listed, Spool, Store};

pub fn open(section: &Section, ctx: &Common) -> Box<dyn Store> {
    let config = MemoryConfig::from_section(section);
    let start = Start {
        dir: paths::dir(),
        max_memory: config.max_memory,
        idle_timeout: config.idle_timeout,
    };
    Box::new(MemoryStore(Rc::new(Lazy::new(
        start,
        ctx.verbose,
        ctx.read_only,
        None,
    ))))
}

pub struct MemoryStore(Rc<Lazy>);

pub(crate) struct Lazy {
    start: Start,
    verbose: bool,
    /// Read-only: a daemon is used if one runs, never started.
    read_only: bool,
    /// How long a new connection's hello may take (see `Conn`); a
    /// daemon that used it all is silent, not refusing, and is not tried
    /// again.
    hello_limit: Option<Duration>,
    conn: RefCell<Option<Conn>>,
    broken: Cell<bool>,
    uploads: Cell<u32>,
}

impl Lazy {
    pub(crate) fn new(
        start: Start,
        verbose: bool,
        read_only: bool,
        hello_limit: Option<Duration>,
    ) -> Lazy {
        Lazy {
            start,
            verbose,
            read_only,
            hello_limit,
            conn: RefCell::new(None),
            broken: Cell::new(false),
            uploads: Cell::new(0),
        }
    }

    /// Read-only and no daemon runs: an empty cache (none is started).
    fn absent(&self) -> Result<bool> {
        if !self.read_only || self.broken.get() || self.conn.borrow().is_some() {
            return Ok(false);
        }
        let running = client::running(&self.start.dir)?;
        let absent = running.is_none();
        *self.conn.borrow_mut() = running;
        Ok(absent)
    }

    /// Run `f` on the connection, made on first use. `f` runs twice only
    /// when a fresh connection's daemon refused it (or hung up) before
    /// serving anything; the second time on a daemon [`client::connect`]
    /// made sure of (restarted if needed).
    pub(crate) fn with<T>(&self, mut f: impl FnMut(&mut Conn) -> Result<T>) -> Result<T> {
        if self.broken.get() {
            return Err(anyhow!("lost the connection to the memory daemon earlier"));
        }
        let verbose = self.verbose;
        let notice = move |what: &str| {
            if verbose {
                crate::warn::line(what);
            }
        };
        let mut slot = self.conn.borrow_mut();
        let fresh = slot.is_none();
        let limit = |mut conn: Conn| {
            conn.hello_limit = self.hello_limit;
            conn
        };
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None if self.read_only => limit(
                client::running(&self.start.dir)?
                    .ok_or_else(|| anyhow!("no memory daemon runs (read-only starts none)"))?,
            ),
            None => limit(client::connect_fast(&self.start, &notice)?),
        };
        let asked = Instant::now();
        let mut out = f(&mut conn);
        let quick = self.hello_limit.is_none_or(|l| asked.elapsed() < l);
        if fresh && conn.retry && !self.read_only && quick {
            conn = limit(client::connect(&self.start, &notice)?);
            out = f(&mut conn);
        }
        if conn.broken {
            self.broken.set(true);
        } else {
            *slot = Some(conn);
        }
        out
    }

    pub(super) fn next_upload(&self) -> u32 {
        self.uploads.set(self.uploads.get() + 1);
        self.uploads.get()
    }
}

struct MemLease {
    store: Rc<Lazy>,
    key: Key,
}

impl Lease for MemLease {}

impl Drop for MemLease {
    fn drop(&mut self) {
        let _ = self.store.with(|c| c.send(&Req::Release { key: self.key }));
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        if self.0.absent()? {
            return Ok(None);
        }
        let resp = self.0.with(|c| c.call(&Req::Get { key: *key }))?;
        let Resp::Found {
            meta,
            created_ms,
            len,
            inline,
        } = resp
        else {
            return match resp {
                Resp::Missing => Ok(None),
                _ => Err(unexpected()),
            };
        };
        let meta = Meta::decode_at(&meta, key, created_ms)?;
        Ok(Some(Found {
            body: Box::new(body::MemBody {
                store: self.0.clone(),
                key: *key,
                want: meta.body_len(),
                len,
                inline: inline.map(|b| b.into_vec()),
            }),
            meta,
            stale_after: None,
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        let id = self.0.next_upload();
        self.0.with(|c| {
            c.settle()?;
            c.send(&Req::Begin { id, key: *key })
        })?;
        Ok(Box::new(body::MemSpool::new(self.0.clone(), id)))
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        let me = &Holder::me();
        let req = Req::Claim {
            key: *key,
            host: me.host.clone(),
            pid: me.pid,
        };
        match self.0.with(|c| c.call(&req))? {
            Resp::Owner => Ok(Claim::Owner(Box::new(MemLease {
                store: self.0.clone(),
                key: *key,
            }))),
            Resp::Busy { host, pid } => Ok(Claim::Busy(Some(Holder { host, pid }))),
            _ => Err(unexpected()),
        }
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        if self.0.absent()? {
            return Ok(true);
        }
        let req = Req::Wait {
            key: *key,
            timeout_ms: timeout.map(|t| t.as_millis() as u64),
        };
        self.0.with(|c| {
            c.reply_timeout(timeout.map(|t| t + client::REPLY_TIMEOUT))?;
            let resp = c.call(&req);
            c.reply_timeout(Some(client::REPLY_TIMEOUT))?;
            match resp? {
                Resp::Flag(done) => Ok(done),
                _ => Err(unexpected()),
            }
        })
    }

    fn remove(&self, key: &Key, _namespace: &str) -> Result<u64> {
        match self.0.with(|c| c.call(&Req::Remove { key: *key }))? {
            Resp::Removed(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        if self.0.absent()? {
            return Ok(Vec::new());
        }
        let req = Req::List {
            namespace: namespace.map(str::to_string),
        };
        self.0.with(|c| {
            c.send(&req)?;
            let mut out = Vec::new();
            loop {
                match c.recv()? {
                    Resp::End => return Ok(out),
                    Resp::Listed {
                        meta,
                        created_ms,
                        last_used_ms,
                        hits,
                        size,
                    } => {
                        let decoded: Result<Meta, _> = ciborium::from_reader(&meta[..]);
                        let Ok(meta) = decoded else {
                            // A corrupt entry is skipped here; a run that hits it discards it.
                            continue;
                        };
                        let meta = Meta { created_ms, ..meta };
                        out.push(Listed {
                            meta,
                            size,
                            last_used: SystemTime::UNIX_EPOCH + Duration::from_millis(last_used_ms),
                            hits,
                        });
                    }
                    _ => return Err(unexpected()),
                }
            }
        })
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        let req = Req::Record {
            namespace: namespace.to_string(),
            key: *key,
            event: Ev::from(event),
        };
        // No reply awaited: a hit pays one round trip.
        self.0.with(|c| {
            c.settle()?;
            c.send(&req)
        })
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        if self.0.absent()? {
            return Ok(BTreeMap::new());
        }
        let Resp::Counters(rows) = self.0.with(|c| c.call(&Req::Counters))? else {
            return Err(unexpected());
        };
        Ok(rows
            .into_iter()
            .map(|(ns, n)| {
                let counters = Counters {
                    entries: n[0],
                    bytes: n[1],
                    hits: n[2],
                    misses: n[3],
                    waits: n[4],
                    stale_serves: n[5],
                    saved_ms: n[6],
                };
                (ns, counters)
            })
            .collect())
    }

    fn reset_counters(&self) -> Result<()> {
        match self.0.with(|c| c.call(&Req::ResetCounters))? {
            Resp::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    fn clear_claims(&self) -> Result<u64> {
        // A claim dies with its owner's connection: none is ever left over.
        Ok(0)
    }

    fn location(&self) -> String {
        format!(
            "memory daemon at {}",
            paths::socket(&self.0.start.dir).display()
        )
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let req = Req::OncePer {
            what: what.to_string(),
            interval_ms: interval.as_millis() as u64,
        };
        match self.0.with(|c| c.call(&req))? {
            Resp::Flag(yes) => Ok(yes),
            _ => Err(unexpected()),
        }
    }
}
