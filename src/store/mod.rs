//! The Store trait every backend implements, and `open`, which opens the
//! configured backend (or a stack of them, [`Opened`]) through the registry.
//!
//! A subcommand reaches a backend only through [`Store`]. Contract shared by
//! all backends: `get` never returns a half-written entry; an entry becomes
//! visible whole when its spool is committed; a claim is released when its
//! [`Lease`] is dropped *or its owner dies*, and each backend documents how
//! fast it notices a dead owner.

mod breaker;
pub(crate) mod compress;
pub(crate) mod file;
pub(crate) mod journal;
pub(crate) mod kit;
#[cfg(any(
    feature = "postgres",
    feature = "redis",
    feature = "mongo",
    feature = "s3"
))]
mod lazy;
mod lock;
pub mod memory;
mod mongo;
pub mod param;
pub(crate) mod pool;
mod readonly;
mod redis;
pub mod registry;
mod s3;
mod sql;
mod staged;
mod tiered;
mod unavailable;

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde::Serialize;

use crate::entry::{Body, Event, Meta, Stream};
use crate::key::Key;
use crate::settings::Settings;
use param::Common;

#[allow(unused_imports)] // each user is a cargo feature
pub use staged::{Staged, read_full};

/// Who computes a key, shown to the callers that wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

impl Holder {
    pub fn me() -> Holder {
        Holder {
            host: crate::entry::host(),
            pid: std::process::id(),
        }
    }
}

/// The result of trying to become the one caller that computes a key.
pub enum Claim {
    /// We compute; the claim lasts as long as the lease.
    Owner(Box<dyn Lease>),
    /// Someone else computes (who, when the backend can tell).
    Busy(Option<Holder>),
}

/// A held claim on a key. Dropping it releases the claim.
pub trait Lease {}

/// An entry found by [`Store::get`]: its metadata now, its body on demand,
/// so a stale entry costs no transfer.
pub struct Found {
    pub meta: Meta,
    pub body: Box<dyn Fetch>,
    /// The store's own freshness bound for this entry (a tier's
    /// `stale_after`), overriding the call's; `None` for plain stores.
    pub stale_after: Option<Duration>,
}

/// Brings an entry's body to a local file for verification and replay.
pub trait Fetch {
    fn fetch(self: Box<Self>) -> Result<Body>;
}

/// An entry being written. Nothing is visible until `commit`; dropping
/// the spool without committing discards it. The body is everything written
/// to stdout, then everything written to stderr.
pub trait Spool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()>;
    /// Append to the outputs archive, once the command's output is all
    /// written: it follows stderr in the body, so it is written as
    /// stderr's tail and every backend carries it as it is.
    fn write_outputs(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(Stream::Stderr, data)
    }
    fn commit(self: Box<Self>, meta: &Meta) -> Result<()>;
}

pub trait Store {
    /// The entry stored under `key`, or `None`. A malformed entry is an
    /// error that downcasts to [`crate::entry::Corrupt`].
    fn get(&self, key: &Key) -> Result<Option<Found>>;

    /// Start writing the entry for `key`.
    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>>;

    /// Try, without blocking, to become the caller that computes `key`
    /// (as [`Holder::me`], which waiters are shown).
    fn claim(&self, key: &Key) -> Result<Claim>;

    /// Block until nobody holds the claim on `key` (its owner finished or
    /// died), or until `timeout`. Returns `false` on timeout.
    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool>;

    /// Remove the entry under `key` (of `namespace`), if any; the bytes freed.
    fn remove(&self, key: &Key, namespace: &str) -> Result<u64>;

    /// Every entry, optionally of one namespace.
    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>>;

    /// [`Store::list`], handed to `visit` one entry at a time in the same
    /// order, so a caller never holds them all (a million entries). An
    /// error from `visit` stops the scan and comes back as it is. A backend
    /// may implement it by listing first.
    fn scan(&self, namespace: Option<&str>, visit: &mut Visit) -> Result<()> {
        for listed in self.list(namespace)? {
            visit(listed)?;
        }
        Ok(())
    }

    /// Count an event for `namespace`; a hit also marks `key` as just used.
    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()>;

    /// Count many replays' events at once, summed as [`Event::deltas`]
    /// gives them (hits, misses, waits, stale serves, saved ms), the hits
    /// all on `key`: how the daemon writes the counts pooled clients sent
    /// it, one write for a burst. By default, one [`Store::record`] per
    /// event.
    fn record_sum(&self, namespace: &str, key: &Key, deltas: [i64; 5]) -> Result<()> {
        let [hits, misses, waits, stale, saved] = deltas.map(|n| n.max(0));
        let ms = |n: i64| Duration::from_millis(n.unsigned_abs());
        let mut events = Vec::new();
        for i in 0..hits {
            let saved = if i == 0 { ms(saved) } else { Duration::ZERO };
            events.push(Event::Hit { saved });
        }
        for (n, event) in [
            (misses, Event::Miss),
            (waits, Event::Wait),
            (stale, Event::StaleServe),
        ] {
            events.extend((0..n).map(|_| event));
        }
        self.record_all(namespace, key, &events)
    }

    /// Count the events of one replay (a hit, and that it waited or was
    /// stale): [`Store::record`] for each, the first error kept; a store
    /// that pays a write per call counts them in one (S3).
    fn record_all(&self, namespace: &str, key: &Key, events: &[Event]) -> Result<()> {
        let mut first = Ok(());
        for &event in events {
            let done = self.record(namespace, key, event);
            if first.is_ok() {
                first = done;
            }
        }
        first
    }

    /// The counters of every namespace, kept by the store (not recounted).
    fn counters(&self) -> Result<BTreeMap<String, Counters>>;

    /// Zero hits, misses, waits and stale serves; entries and bytes stay.
    fn reset_counters(&self) -> Result<()>;

    /// Wipe claims left by dead computations; how many went.
    fn clear_claims(&self) -> Result<u64>;

    /// Where the store lives, for people (never with a password).
    fn location(&self) -> String;

    /// Remove debris of interrupted writes; part of `gc`.
    fn sweep(&self) -> Result<()> {
        Ok(())
    }

    /// Whether a lookup that found nothing left this handle remembering
    /// something a later lookup must not trust (tables found missing): the
    /// daemon's pool then drops it rather than keep it for the next call.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // (the pool is Linux's)
    fn remembers_absence(&self) -> bool {
        false
    }

    /// `true` at most once per `interval` for `what`, across processes:
    /// rate-limits background clean-up.
    fn once_per(&self, what: &str, interval: Duration) -> Result<bool>;

    /// `false` for a read-only store: it serves, and keeps nothing.
    fn writable(&self) -> bool {
        true
    }
}

/// An opened store: one backend, or a stack of them. A stack is a [`Store`]
/// too; what only a stack does (per-tier figures, copying a hit up) is
/// asked of it here, by name.
pub enum Opened {
    One(Box<dyn Store>),
    Stack(Box<tiered::Tiered>),
}

impl std::ops::Deref for Opened {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        match self {
            Opened::One(store) => &**store,
            Opened::Stack(stack) => &**stack,
        }
    }
}

impl Opened {
    /// The tiers by name, in lookup order; empty for one backend.
    pub fn tiers(&self) -> Vec<(&'static str, &dyn Store)> {
        match self {
            Opened::One(_) => Vec::new(),
            Opened::Stack(stack) => stack.tiers(),
        }
    }

    /// Every entry once, with the tiers that hold it (none for one
    /// backend), one at a time: one backend streams its scan; a stack
    /// merges its tiers' lists first (the copy listed being the highest
    /// tier's; a tier that cannot list is left out, with a warning).
    pub fn scan_held(
        &self,
        namespace: Option<&str>,
        visit: &mut dyn FnMut(Listed, Vec<&'static str>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Opened::One(store) => store.scan(namespace, &mut |l| visit(l, Vec::new())),
            Opened::Stack(stack) => {
                for (listed, tiers) in stack.held(namespace) {
                    visit(listed, tiers)?;
                }
                Ok(())
            }
        }
    }

    /// After a hit is replayed: a stack copies it into the tiers above the
    /// one that served it; one backend has nothing to do.
    pub fn copy_up(&self, key: &Key) -> Result<()> {
        match self {
            Opened::One(_) => Ok(()),
            Opened::Stack(stack) => stack.copy_up(key),
        }
    }
}

/// What [`Store::scan`] hands each entry to.
pub type Visit<'a> = dyn FnMut(Listed) -> Result<()> + 'a;

/// An entry as the management commands see it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub meta: Meta,
    /// Bytes it takes in the store.
    pub size: u64,
    /// Its last hit, or its creation if it never hit.
    pub last_used: SystemTime,
    pub hits: u64,
}

/// One namespace's counters, as `cachier stats --json` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub entries: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub waits: u64,
    pub stale_serves: u64,
    /// Sum of the recorded run time of every hit.
    pub saved_ms: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.entries += other.entries;
        self.bytes += other.bytes;
        self.hits += other.hits;
        self.misses += other.misses;
        self.waits += other.waits;
        self.stale_serves += other.stale_serves;
        self.saved_ms += other.saved_ms;
    }

    /// Hits over lookups, 0 when nothing was looked up.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// A call's freshness bounds (`--stale-after`, `--max-age`): a stack judges
/// each tier's entries by them, and servers expire entries some time past
/// the first (Redis, MongoDB).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds {
    pub stale_after: Option<Duration>,
    pub max_age: Option<Duration>,
}

/// Open the configured store under the configured bounds, tiered when
/// several backends are stacked. Cheap: no I/O happens until it is used.
pub fn open(settings: &Settings) -> Opened {
    let bounds = Bounds {
        stale_after: settings.stale_after,
        max_age: settings.max_age,
    };
    open_with(settings, bounds)
}

/// [`open`], under the call's own bounds.
pub fn open_with(settings: &Settings, bounds: Bounds) -> Opened {
    let open_tier = |tier: &crate::settings::Tier, stale_after| {
        let def = tier.backend.def();
        let read_only = settings.read_only || tier.read_only;
        let common = Common {
            read_only,
            ..context(settings, stale_after)
        };
        let section = settings.section(tier.backend);
        let store = (def.open)(section, &common);
        let store = pool::wrap(tier.backend, section, &common, settings.pool, store);
        let policy = breaker::Policy {
            strict: settings.strict,
            retry_after: settings.retry_after,
        };
        let store = breaker::guard(tier.backend, section, &policy, store);
        if read_only {
            Box::new(readonly::ReadOnly(store))
        } else {
            store
        }
    };
    if let [only] = &settings.tiers[..] {
        return Opened::One(open_tier(only, bounds.stale_after));
    }
    let tiers = settings
        .tiers
        .iter()
        // Its own bound also sets its server-side expiry (Redis, MongoDB).
        .map(|t| {
            let store = open_tier(t, t.stale_after.or(bounds.stale_after));
            (t.backend, store, t.stale_after)
        })
        .collect();
    Opened::Stack(Box::new(tiered::Tiered::new(
        tiers,
        tiered::StackOpts {
            stale_after: bounds.stale_after,
            max_age: bounds.max_age,
            strict: settings.strict,
            verbose: settings.verbose,
        },
    )))
}

fn context(settings: &Settings, stale_after: Option<Duration>) -> Common {
    Common {
        cache_dir: settings.cache_dir.clone(),
        verbose: settings.verbose,
        stale_after,
        read_only: settings.read_only,
        compression: settings.compression,
    }
}

/// Whether the chosen backends' own settings (their URLs) are usable; the
/// message is a usage error. Checked before anything runs.
pub fn check(settings: &Settings) -> Result<(), String> {
    for tier in &settings.tiers {
        let def = tier.backend.def();
        (def.check)(
            settings.section(tier.backend),
            &context(settings, settings.stale_after),
        )?;
    }
    Ok(())
}
