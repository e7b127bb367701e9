//! A stack of stores (`--backend memory,redis,sql`) that is itself a Store:
//! lookups go down the tiers and the first fresh entry is served, then
//! copied into the tiers above it; a miss is claimed on the most shared tier and
//! written to every tier. No backend knows it is a tier.
//!
//! A tier that fails is skipped, with one warning, for the rest of the
//! process (under `--strict` its failure is the error); a tier's corrupt
//! entry is discarded there and the tiers below still serve.
mod counts;
mod fill;
mod list;
mod spool;

use list::merge;

use fill::Fetched;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};

use super::registry::Backend;
use super::{Claim, Counters, Found, Listed, Spool, Store};
use crate::entry::{Body, Corrupt, Event, NewerFormat};
use crate::key::Key;
use crate::warn;

/// One tier: its store and its own freshness bound.
struct Level {
    name: &'static str,
    backend: Backend,
    store: Box<dyn Store>,
    stale_after: Option<Duration>,
}

/// What the tiers share with the spools and fetches they hand out.
struct Shared {
    levels: Vec<Level>,
    /// Tiers that failed this process: skipped from then on.
    down: RefCell<Vec<bool>>,
    strict: bool,
    verbose: bool,
}

impl Shared {
    fn up(&self, i: usize) -> bool {
        !self.down.borrow()[i]
    }

    /// A tier failed: under `--strict` that is the error; else warn once and
    /// skip the tier for the rest of the run.
    fn trouble(&self, i: usize, err: anyhow::Error) -> Result<()> {
        let name = self.levels[i].name;
        if self.strict {
            return Err(err.context(format!("tier {name}")));
        }
        self.down.borrow_mut()[i] = true;
        warn::once(&format!(
            "tier {name}: {err:#}; skipping it, the other tiers still serve"
        ));
        Ok(())
    }

    fn verbose(&self, what: &str) {
        if self.verbose {
            warn::line(what);
        }
    }
}

/// How a stack behaves: the call's bounds, and how it reports a failing tier.
#[derive(Debug, Clone, Copy, Default)]
pub struct StackOpts {
    pub stale_after: Option<Duration>,
    pub max_age: Option<Duration>,
    pub strict: bool,
    pub verbose: bool,
}

pub struct Tiered {
    shared: Rc<Shared>,
    /// The call's bounds (`--stale-after`, `--max-age`).
    stale_after: Option<Duration>,
    max_age: Option<Duration>,
    /// The tier that served the last lookup.
    served: Cell<Option<usize>>,
    /// What that lookup leaves to copy up once it is replayed.
    pending: RefCell<Option<fill::Pending>>,
    /// The tier holding this process's claim.
    claimed: Cell<Option<usize>>,
}

impl Tiered {
    /// The stack of `tiers` (backend, its store, its own freshness bound),
    /// in lookup order, under the call's bounds.
    pub fn new(tiers: Vec<(Backend, Box<dyn Store>, Option<Duration>)>, opts: StackOpts) -> Tiered {
        let levels: Vec<Level> = tiers
            .into_iter()
            .map(|(backend, store, stale_after)| Level {
                name: backend.name(),
                backend,
                store,
                stale_after,
            })
            .collect();
        let n = levels.len();
        Tiered {
            shared: Rc::new(Shared {
                levels,
                down: RefCell::new(vec![false; n]),
                strict: opts.strict,
                verbose: opts.verbose,
            }),
            stale_after: opts.stale_after,
            max_age: opts.max_age,
            served: Cell::new(None),
            pending: RefCell::new(None),
            claimed: Cell::new(None),
        }
    }

    /// Each tier by name, in lookup order: for per-tier figures.
    pub fn tiers(&self) -> Vec<(&'static str, &dyn Store)> {
        self.levels().iter().map(|l| (l.name, &*l.store)).collect()
    }

    /// Every entry once, with the tiers that hold it; a tier that cannot
    /// list is left out with a warning.
    pub fn held(&self, namespace: Option<&str>) -> Vec<(Listed, Vec<&'static str>)> {
        let mut per_tier = Vec::new();
        for (name, tier) in self.tiers() {
            match tier.list(namespace) {
                Ok(listed) => per_tier.push((name, listed)),
                Err(e) => warn::line(&format!("warning: tier {name}: {e:#}; left it out")),
            }
        }
        merge(per_tier)
    }

    /// After the hit the last lookup found was replayed: copy it into the
    /// tiers above the one that served it (never before its first byte).
    pub fn copy_up(&self, key: &Key) -> Result<()> {
        match self.pending.borrow_mut().take() {
            Some(pending) => {
                fill::after_hit(&self.shared, key, pending, self.stale_after, self.max_age)
            }
            None => Ok(()),
        }
    }

    fn levels(&self) -> &[Level] {
        &self.shared.levels
    }

    /// Working tiers, most shared first (the deeper one on a tie).
    fn by_reach(&self) -> Vec<usize> {
        let mut order = self.by_reach_all();
        order.retain(|&i| self.shared.up(i));
        order
    }

    /// Every tier: writable, then most shared, then deeper ones first.
    fn by_reach_all(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.levels().len()).collect();
        order.sort_by_key(|&i| {
            let level = &self.levels()[i];
            let reach = level.backend.reach();
            let writable = level.store.writable();
            (
                std::cmp::Reverse(writable),
                std::cmp::Reverse(reach),
                std::cmp::Reverse(i),
            )
        });
        order
    }

    /// Run `op` on every working tier; a failing tier is trouble.
    fn each<T>(&self, mut op: impl FnMut(&dyn Store) -> Result<T>) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for (i, level) in self.levels().iter().enumerate() {
            if !self.shared.up(i) {
                continue;
            }
            match op(&*level.store) {
                Ok(v) => out.push(v),
                Err(e) => self.shared.trouble(i, e)?,
            }
        }
        Ok(out)
    }

    fn none_up(&self) -> anyhow::Error {
        anyhow!("every tier of the backend stack failed")
    }
}

impl Store for Tiered {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        let now = SystemTime::now();
        let mut stale: Option<Found> = None;
        // A tier's corrupt copy: reported if a lower tier serves, returned
        // (so the caller discards and recomputes) if none does.
        let mut corrupt: Option<(usize, anyhow::Error)> = None;
        for (i, level) in self.levels().iter().enumerate() {
            if !self.shared.up(i) {
                continue;
            }
            let found = match level.store.get(key) {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                // A newer cachier's entry: the stack misses, and keeps it.
                Err(e) if e.downcast_ref::<NewerFormat>().is_some() => return Err(e),
                Err(e) if e.downcast_ref::<Corrupt>().is_some() => {
                    let e = fill::discard(&self.shared, i, key, "", e)?;
                    corrupt.get_or_insert((i, e));
                    continue;
                }
                Err(e) => {
                    self.shared.trouble(i, e)?;
                    continue;
                }
            };
            let age = found.meta.age(now);
            if self.max_age.is_some_and(|max| age > max) {
                continue;
            }
            let bound = level.stale_after.or(self.stale_after);
            if bound.is_some_and(|b| age > b) {
                if stale.is_none() {
                    self.served.set(Some(i));
                    stale = Some(Found {
                        stale_after: bound,
                        ..found
                    });
                }
                continue;
            }
            // Verified here, before it is copied up: a bad copy in this tier
            // must not spread, and the tiers below may still serve.
            let (meta, body) = match fill::fetch(&self.shared, i, found)? {
                Fetched::Good(good) => *good,
                Fetched::Corrupt(e) => {
                    corrupt.get_or_insert((i, e));
                    continue;
                }
                Fetched::Failed => continue,
            };
            if let Some((bad, e)) = corrupt.take() {
                warn::once(&format!(
                    "tier {}: {e:#}; discarded it there, tier {} served",
                    self.levels()[bad].name,
                    level.name
                ));
            }
            // The copy up waits until the hit is replayed (`record`), so it
            // never delays the first byte; a second descriptor reads it.
            let copy = body.file.try_clone().ok().map(|file| Body {
                file,
                start: body.start,
            });
            *self.pending.borrow_mut() = Some(fill::Pending {
                from: i,
                meta: meta.clone(),
                body: copy,
            });
            self.served.set(Some(i));
            return Ok(Some(Found {
                meta,
                body: Box::new(fill::Ready(body)),
                stale_after: bound,
            }));
        }
        match (stale, corrupt) {
            (Some(found), _) => Ok(Some(found)),
            (None, Some((_, e))) => Err(e),
            (None, None) => Ok(None),
        }
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        spool::begin(&self.shared, key)
    }

    /// Claimed on the most shared tier even if a lookup there just failed:
    /// a store that recovers from a passing error (SQLite busy) then still
    /// claims for the fleet; one that gave up on its server (Redis, MongoDB
    /// stop asking after a failure) fails again at once, and the claim falls
    /// to the next tier.
    fn claim(&self, key: &Key) -> Result<Claim> {
        for i in self.by_reach_all() {
            match self.levels()[i].store.claim(key) {
                Ok(claim) => {
                    // It answers after all: it stores this run's result too.
                    self.shared.down.borrow_mut()[i] = false;
                    self.claimed.set(Some(i));
                    return Ok(claim);
                }
                Err(e) => self.shared.trouble(i, e)?,
            }
        }
        Err(self.none_up())
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        let i = match self.claimed.get() {
            Some(i) => i,
            None => *self.by_reach().first().ok_or_else(|| self.none_up())?,
        };
        self.levels()[i].store.wait(key, timeout)
    }

    fn remove(&self, key: &Key, namespace: &str) -> Result<u64> {
        Ok(self.each(|s| s.remove(key, namespace))?.into_iter().sum())
    }

    /// Every entry once: the copy in the highest tier that holds it.
    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        let per_tier = self.each(|s| s.list(namespace))?;
        let named = per_tier.into_iter().map(|l| ("", l)).collect();
        Ok(merge(named).into_iter().map(|(l, _)| l).collect())
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        self.count(namespace, key, &[event])
    }

    fn record_all(&self, namespace: &str, key: &Key, events: &[Event]) -> Result<()> {
        self.count(namespace, key, events)
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        self.sum_counters()
    }

    fn reset_counters(&self) -> Result<()> {
        self.each(|s| s.reset_counters()).map(drop)
    }

    fn clear_claims(&self) -> Result<u64> {
        Ok(self.each(|s| s.clear_claims())?.into_iter().sum())
    }

    fn location(&self) -> String {
        let parts: Vec<String> = self
            .levels()
            .iter()
            .map(|l| format!("{}: {}", l.name, l.store.location()))
            .collect();
        parts.join("\n")
    }

    fn sweep(&self) -> Result<()> {
        self.each(|s| s.sweep()).map(drop)
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let i = *self.by_reach().first().ok_or_else(|| self.none_up())?;
        self.levels()[i].store.once_per(what, interval)
    }

    fn writable(&self) -> bool {
        self.levels().iter().any(|l| l.store.writable())
    }
}
