//! The daemon's side of pooling: each worker thread keeps the server
//! stores it opened, by the hash of their target (backend, settings and
//! credentials), and answers lookups, body transfers and hit counts on
//! them. A store whose call failed is dropped (its connection may be
//! dead), and a failure on a reused one is tried once more on a fresh one,
//! so a restarted server costs a client nothing.
use std::cell::RefCell;
use std::fs::File;

use anyhow::Result;
use serde_bytes::ByteBuf;

use super::target;
use crate::entry::{Corrupt, Event, NewerFormat};
use crate::key::Key;
use crate::store::breaker::is_outage;
use crate::store::memory::daemon::proto::{Ev, INLINE, Resp};
use crate::store::{Fetch, Store};

/// Targets one worker keeps connections to; past this the oldest goes.
const MAX_TARGETS: usize = 16;

/// A store, by the hash of its target.
type Pooled = ([u8; 32], Box<dyn Store>);

thread_local! {
    /// This worker's stores, oldest use first.
    static POOL: RefCell<Vec<Pooled>> = const { RefCell::new(Vec::new()) };
}

/// One connection's pooled state: the body its last lookup found.
#[derive(Default)]
pub struct Held {
    body: Option<Box<dyn Fetch>>,
}

impl Held {
    /// The entry of `key` in `target`'s store; a small one's body comes
    /// along (a descriptor), so a hit is one round trip.
    pub fn get(&mut self, target: &[u8], key: &Key) -> (Resp, Option<File>) {
        self.body = None;
        let found = match with_store(target, true, |store| store.get(key), Option::is_some) {
            Ok(None) => return (Resp::Missing, None),
            Ok(Some(found)) => found,
            Err(e) => return (failed(&e), None),
        };
        let mut meta = Vec::new();
        if let Err(e) = ciborium::into_writer(&found.meta, &mut meta) {
            return (
                failed(&anyhow::anyhow!("cannot encode the entry: {e}")),
                None,
            );
        }
        let stale_after_ms = found
            .stale_after
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let (start, file) = if found.meta.body_len() <= INLINE {
            match found.body.fetch() {
                Ok(body) => (Some(body.start), Some(body.file)),
                Err(e) => return (failed(&e), None),
            }
        } else {
            self.body = Some(found.body);
            (None, None)
        };
        let resp = Resp::Pooled {
            meta: ByteBuf::from(meta),
            stale_after_ms,
            start,
        };
        (resp, file)
    }

    /// The body the last lookup found, brought to a local file, and where
    /// its output starts; or the failure to send instead.
    pub fn body(&mut self) -> Result<(File, u64), Resp> {
        let Some(fetch) = self.body.take() else {
            return Err(failed(&anyhow::anyhow!("no entry to send")));
        };
        match fetch.fetch() {
            Ok(body) => Ok((body.file, body.start)),
            Err(e) => Err(failed(&e)),
        }
    }

    /// Count one replay's events in `target`'s store. Not tried twice: a
    /// count must not land twice.
    pub fn record(&mut self, target: &[u8], namespace: &str, key: &Key, events: &[Ev]) -> Resp {
        let events: Vec<Event> = events.iter().map(|&e| Event::from(e)).collect();
        match with_store(
            target,
            false,
            |store| store.record_all(namespace, key, &events),
            |_| true,
        ) {
            Ok(()) => Resp::Done,
            Err(e) => failed(&e),
        }
    }
}

/// Run `f` on `target`'s store of this worker (opened first if need be);
/// kept for the next call only if `f` succeeded and `keep` says so of its
/// result (a store that found nothing may remember why, such as tables
/// it found missing, which a later call must not trust). With `again`, a
/// failure on a reused store is tried once more on a fresh one.
fn with_store<T>(
    target: &[u8],
    again: bool,
    f: impl Fn(&dyn Store) -> Result<T>,
    keep: impl Fn(&T) -> bool,
) -> Result<T> {
    let id = *blake3::hash(target).as_bytes();
    let reused = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let at = pool.iter().position(|(k, _)| *k == id)?;
        Some(pool.remove(at).1)
    });
    let fresh = reused.is_none();
    let mut store = match reused {
        Some(store) => store,
        None => target::open(target)?,
    };
    let v = match f(&*store) {
        Ok(v) => v,
        Err(e) if fresh || !again || about_the_entry(&e) => return Err(e),
        Err(_) => {
            store = target::open(target)?;
            f(&*store)?
        }
    };
    if keep(&v) {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() >= MAX_TARGETS {
                pool.remove(0);
            }
            pool.push((id, store));
        });
    }
    Ok(v)
}

/// A failure the entry itself causes, which a new connection would repeat.
fn about_the_entry(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Corrupt>().is_some() || e.downcast_ref::<NewerFormat>().is_some()
}

fn failed(e: &anyhow::Error) -> Resp {
    Resp::PoolFailed {
        why: format!("{e:#}"),
        outage: is_outage(e),
        corrupt: e
            .downcast_ref::<Corrupt>()
            .map(|c| (c.key.clone(), c.why.clone())),
    }
}
