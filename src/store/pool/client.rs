//! A server store whose lookups and hit counts go through the per-user
//! daemon's pooled connection, everything else straight to the server.
//! The daemon is started on first use, like the memory backend's; with
//! none to be had, or one that fails us, this process goes straight to the
//! server from then on, with the same results.
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_bytes::ByteBuf;

use crate::entry::{Body, Corrupt, Event, Meta};
use crate::key::Key;
use crate::store::breaker::outage;
use crate::store::memory::daemon::client::{self, Conn, Start};
use crate::store::memory::daemon::paths;
use crate::store::memory::daemon::proto::{Ev, Req, Resp};
use crate::store::memory::store::Lazy;
use crate::store::memory::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_MEMORY};
use crate::store::{Claim, Counters, Fetch, Found, Listed, Spool, Store, Visit};

pub struct Pooled {
    inner: Rc<dyn Store>,
    target: Vec<u8>,
    link: Rc<Link>,
    verbose: bool,
}

/// The connection to the daemon, made on first use (as the memory
/// backend's, its hello answered within [`HELLO_TIMEOUT`]); once it
/// fails, none.
struct Link {
    daemon: Lazy,
    off: Cell<bool>,
}

impl Pooled {
    pub fn new(inner: Box<dyn Store>, target: Vec<u8>, verbose: bool) -> Pooled {
        Pooled {
            inner: Rc::from(inner),
            target,
            link: Rc::new(Link {
                // Read-only or not, a pooled store may start the daemon.
                daemon: Lazy::new(start(), verbose, false, Some(HELLO_TIMEOUT)),
                off: Cell::new(false),
            }),
            verbose,
        }
    }

    /// The daemon's reply to `req` (with the descriptor riding on it, if
    /// any), or `None` when there is no daemon to ask (then the caller goes
    /// to the server itself).
    fn ask(&self, req: &Req) -> Option<(Resp, Option<OwnedFd>)> {
        let got = self.link.call(
            |conn| {
                conn.send(req)?;
                conn.recv_fd()
            },
            self.verbose,
        );
        got.ok()
    }
}

/// How long a daemon has to answer our hello: past it, it is taken as
/// broken and this process goes to the server directly.
const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

impl Link {
    fn call<T>(&self, f: impl Fn(&mut Conn) -> Result<T>, verbose: bool) -> Result<T> {
        if self.off.get() {
            return Err(anyhow!("no pooled connection"));
        }
        let out = self.daemon.with(f);
        if let Err(e) = &out {
            self.off.set(true);
            if verbose {
                crate::warn::line(&format!(
                    "pooled connections unavailable ({e:#}); connecting to the server directly"
                ));
            }
        }
        out
    }
}

/// Wait until the counts that clients which have ended sent to a running
/// daemon are made (see `Req::PoolSettle`), so that what this process
/// reads from the server includes them. Best effort; starts no daemon.
fn settle() {
    if let Ok(Some(mut conn)) = client::running(&paths::dir()) {
        let _ = conn.call(&Req::PoolSettle);
    }
}

/// How the daemon is started when none runs: as the memory backend's
/// defaults would (a daemon started for the memory backend serves too).
fn start() -> Start {
    Start {
        dir: paths::dir(),
        max_memory: DEFAULT_MAX_MEMORY,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
    }
}

/// The daemon's failure as the error the server's own call would give.
fn failure(why: String, is_outage: bool, corrupt: Option<(String, String)>) -> anyhow::Error {
    match corrupt {
        Some((key, why)) => Corrupt { key, why }.into(),
        None if is_outage => outage(anyhow!(why)),
        None => anyhow!(why),
    }
}

/// The body of the entry the daemon last found, passed as a descriptor.
struct PoolFetch {
    link: Rc<Link>,
    verbose: bool,
    /// Where to fetch it if the daemon went away since the lookup.
    inner: Rc<dyn Store>,
    key: Key,
    /// What the lookup found, so that a fetch from the server itself only
    /// takes that same entry.
    seen: (u64, [u8; 32], [u8; 32]),
    /// Past [`LARGE`]: the transfer dwarfs a connection, and the daemon
    /// never stages it.
    large: bool,
    /// A small body, which came with the lookup.
    came: Option<Body>,
}

/// A body larger than this is fetched from the server directly.
const LARGE: u64 = 16 << 20;

fn identity(meta: &Meta) -> (u64, [u8; 32], [u8; 32]) {
    (meta.created_ms, meta.stdout_blake3, meta.stderr_blake3)
}

impl Fetch for PoolFetch {
    fn fetch(mut self: Box<Self>) -> Result<Body> {
        if let Some(body) = self.came.take() {
            return Ok(body);
        }
        let got = if self.large {
            Err(anyhow!("a large body comes from the server directly"))
        } else {
            self.link.call(
                |conn| {
                    conn.send(&Req::PoolBody { key: self.key })?;
                    conn.recv_fd()
                },
                self.verbose,
            )
        };
        let Ok((resp, fd)) = got else {
            return match self.inner.get(&self.key)? {
                Some(found) if identity(&found.meta) == self.seen => found.body.fetch(),
                _ => Err(anyhow!(
                    "cache entry {} changed while it was read",
                    self.key.short()
                )),
            };
        };
        match (resp, fd) {
            (Resp::PoolBody { start }, Some(fd)) => Ok(Body {
                file: File::from(fd),
                start,
            }),
            (
                Resp::PoolFailed {
                    why,
                    outage,
                    corrupt,
                },
                _,
            ) => Err(failure(why, outage, corrupt)),
            _ => Err(client::unexpected()),
        }
    }
}

impl Store for Pooled {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        let req = Req::PoolGet {
            target: ByteBuf::from(self.target.clone()),
            key: *key,
        };
        match self.ask(&req) {
            Some((Resp::Missing, _)) => Ok(None),
            Some((
                Resp::Pooled {
                    meta,
                    stale_after_ms,
                    start,
                },
                fd,
            )) => match Meta::decode(&meta, key) {
                Ok(meta) => Ok(Some(Found {
                    body: Box::new(PoolFetch {
                        link: self.link.clone(),
                        verbose: self.verbose,
                        inner: self.inner.clone(),
                        key: *key,
                        seen: identity(&meta),
                        large: meta.body_len() > LARGE,
                        came: start.zip(fd).map(|(start, fd)| Body {
                            file: File::from(fd),
                            start,
                        }),
                    }),
                    meta,
                    stale_after: stale_after_ms.map(Duration::from_millis),
                })),
                Err(_) => self.inner.get(key),
            },
            // A fresh connection of the daemon's could not reach the
            // server either: so would ours.
            Some((
                Resp::PoolFailed {
                    why, outage: true, ..
                },
                _,
            )) => Err(failure(why, true, None)),
            // The entry itself is damaged: asking the server again would
            // only read it again.
            Some((
                Resp::PoolFailed {
                    why,
                    outage,
                    corrupt: Some(corrupt),
                },
                _,
            )) => Err(failure(why, outage, Some(corrupt))),
            // The server's own call says exactly what went wrong.
            _ => self.inner.get(key),
        }
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        self.record_all(namespace, key, &[event])
    }

    fn record_all(&self, namespace: &str, key: &Key, events: &[Event]) -> Result<()> {
        let req = Req::PoolRecord {
            target: ByteBuf::from(self.target.clone()),
            namespace: namespace.to_string(),
            key: *key,
            events: events.iter().map(|&e| Ev::from(e)).collect(),
        };
        // Sent, not awaited: the daemon counts it after this process has
        // gone on (or ended); what reads counts settles first.
        let sent = self.link.call(
            |conn| {
                conn.settle()?;
                conn.send(&req)
            },
            self.verbose,
        );
        match sent {
            Ok(()) => Ok(()),
            _ => self.inner.record_all(namespace, key, events),
        }
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        self.inner.begin(key)
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        self.inner.claim(key)
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        self.inner.wait(key, timeout)
    }

    fn remove(&self, key: &Key, namespace: &str) -> Result<u64> {
        self.inner.remove(key, namespace)
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        settle();
        self.inner.list(namespace)
    }

    fn scan(&self, namespace: Option<&str>, visit: &mut Visit) -> Result<()> {
        settle();
        self.inner.scan(namespace, visit)
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        settle();
        self.inner.counters()
    }

    fn reset_counters(&self) -> Result<()> {
        settle();
        self.inner.reset_counters()
    }

    fn clear_claims(&self) -> Result<u64> {
        self.inner.clear_claims()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn sweep(&self) -> Result<()> {
        self.inner.sweep()
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        self.inner.once_per(what, interval)
    }

    fn writable(&self) -> bool {
        self.inner.writable()
    }
}
