//! The daemon's side of pooling: each worker thread keeps the server
//! stores it opened, by the hash of their target (backend, settings and
//! credentials), and answers lookups, body transfers and hit counts on
//! them. A store whose call failed is dropped (its connection may be
//! dead), and a failure on a reused one is tried once more on a fresh one,
//! so a restarted server costs a client nothing.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Mutex, MutexGuard};

use anyhow::Result;
use serde_bytes::ByteBuf;

use super::target;
use crate::entry::{Corrupt, Event, NewerFormat};
use crate::key::Key;
use crate::store::breaker::is_outage;
use crate::store::memory::daemon::proto::{self, Ev, INLINE, Resp};
use crate::store::{Fetch, Store};

/// Targets one worker keeps connections to; past this the oldest goes.
const MAX_TARGETS: usize = 16;

/// A store kept for its target (by hash), counted in [`OPEN`] while kept.
struct Kept {
    id: [u8; 32],
    store: Box<dyn Store>,
    location: String,
}

impl Kept {
    fn new(id: [u8; 32], store: Box<dyn Store>) -> Kept {
        let location = store.location();
        *open().entry(location.clone()).or_default() += 1;
        Kept {
            id,
            store,
            location,
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let mut open = open();
        if let Some(n) = open.get_mut(&self.location) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.location);
            }
        }
    }
}

thread_local! {
    /// This worker's stores, oldest use first.
    static POOL: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// How many stores every worker keeps, by server (for `daemon status`).
static OPEN: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn open() -> MutexGuard<'static, BTreeMap<String, u64>> {
    OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The servers the daemon keeps connections to, and how many each.
pub fn open_servers() -> Vec<(String, u64)> {
    open().iter().map(|(k, n)| (k.clone(), *n)).collect()
}

/// Whether this worker holds an open store for `target` (a lookup on it
/// makes no new connection).
pub fn warm(target: &[u8]) -> bool {
    let id = *blake3::hash(target).as_bytes();
    POOL.with(|pool| pool.borrow().iter().any(|k| k.id == id))
}

/// Close this thread's pooled stores (before the thread ends).
pub fn drop_thread_stores() {
    let kept = POOL.try_with(|pool| std::mem::take(&mut *pool.borrow_mut()));
    drop(kept);
}

/// One connection's pooled state: the body its last lookup found, and
/// of which key.
#[derive(Default)]
pub struct Held {
    body: Option<(Key, Box<dyn Fetch>)>,
}

impl Held {
    /// The entry of `key` in `target`'s store; a small one's body comes
    /// along (a descriptor), so a hit is one round trip.
    pub fn get(&mut self, target: &[u8], key: &Key) -> (Resp, Option<File>) {
        self.body = None;
        let found = match with_store(target, true, |store| store.get(key)) {
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
        let stale_after_ms = found.stale_after.map(proto::millis);
        let (start, file) = if found.meta.body_len() <= INLINE {
            match found.body.fetch() {
                Ok(body) => (Some(body.start), Some(body.file)),
                Err(e) => return (failed(&e), None),
            }
        } else {
            self.body = Some((*key, found.body));
            (None, None)
        };
        let resp = Resp::Pooled {
            meta: ByteBuf::from(meta),
            stale_after_ms,
            start,
        };
        (resp, file)
    }

    /// The body the last lookup found, if it was of `key`, brought to a
    /// local file, and where its output starts; or the failure to send
    /// instead.
    pub fn body(&mut self, key: &Key) -> Result<(File, u64), Resp> {
        let Some(fetch) = self.body.take().filter(|(of, _)| of == key).map(|(_, f)| f) else {
            return Err(failed(&anyhow::anyhow!("no entry of this key to send")));
        };
        match fetch.fetch() {
            Ok(body) => Ok((body.file, body.start)),
            Err(e) => Err(failed(&e)),
        }
    }

    /// Count one replay's events in `target`'s store, shortly and with
    /// others (`tally`). Nobody hears of a failure: the client did not
    /// wait, and a count is worth no retry.
    pub fn record(&mut self, target: &[u8], namespace: &str, key: &Key, events: &[Ev]) {
        let events: Vec<Event> = events.iter().map(|&e| Event::from(e)).collect();
        super::tally::add(target, namespace, key, &events);
    }
}

/// Run `f` on `target`'s store of this worker (opened first if need be);
/// kept for the next call only if `f` succeeded and the store remembers
/// nothing of an absence (tables it found missing, which a later call must
/// not trust; a miss alone keeps the connection). With `again`, a failure
/// on a reused store is tried once more on a fresh one.
pub(super) fn with_store<T>(
    target: &[u8],
    again: bool,
    f: impl Fn(&dyn Store) -> Result<T>,
) -> Result<T> {
    let id = *blake3::hash(target).as_bytes();
    let reused = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let at = pool.iter().position(|k| k.id == id)?;
        Some(pool.remove(at))
    });
    let fresh = reused.is_none();
    let mut store = match reused {
        Some(kept) => kept,
        None => Kept::new(id, target::open(target)?),
    };
    let v = match f(&*store.store) {
        Ok(v) => v,
        Err(e) if fresh || !again || about_the_entry(&e) => return Err(e),
        Err(_) => {
            drop(store);
            store = Kept::new(id, target::open(target)?);
            f(&*store.store)?
        }
    };
    if !store.store.remembers_absence() {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() >= MAX_TARGETS {
                pool.remove(0);
            }
            pool.push(store);
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Held1;
    impl Fetch for Held1 {
        fn fetch(self: Box<Self>) -> Result<crate::entry::Body> {
            Err(anyhow::anyhow!("fetched"))
        }
    }

    /// A connection's held body goes only to a request for its own key.
    #[test]
    fn a_body_goes_only_to_its_own_key() {
        let mut held = Held {
            body: Some((Key([1; 32]), Box::new(Held1))),
        };
        let refused = |r: Result<(File, u64), Resp>, what: &str| matches!(r, Err(Resp::PoolFailed { why, .. }) if why.contains(what));
        assert!(refused(held.body(&Key([2; 32])), "no entry of this key"));
        held.body = Some((Key([1; 32]), Box::new(Held1)));
        assert!(refused(held.body(&Key([1; 32])), "fetched"));
    }
}
