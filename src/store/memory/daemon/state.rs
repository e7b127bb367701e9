//! The daemon's memory: entries with least-recently-used eviction under the
//! cap, per-namespace counters, claims owned by connections, and the marks
//! of `once_per`. One mutex guards it all; one condvar wakes waiters when a
//! claim goes or an entry is stored.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::key::Key;
use crate::store::kit::Deadline;

use super::body::Bytes;
use super::proto::{Ev, Status};

/// An entry's bytes: its metadata (CBOR, opaque here) and its body,
/// stdout then stderr.
pub struct Data {
    pub meta: Vec<u8>,
    pub body: Bytes,
    pub len: u64,
}

pub struct Slot {
    pub data: Arc<Data>,
    pub namespace: String,
    pub created_ms: u64,
    pub last_used_ms: u64,
    pub hits: u64,
    /// Bytes it counts against the cap.
    pub size: u64,
    /// Its place in the LRU order.
    tick: u64,
    /// Which store it was (for waiters that must see a new one).
    seq: u64,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    hits: u64,
    misses: u64,
    waits: u64,
    stale_serves: u64,
    saved_ms: u64,
}

#[derive(Default)]
pub struct State {
    entries: HashMap<Key, Slot>,
    lru: BTreeMap<u64, Key>,
    tick: u64,
    seq: u64,
    bytes: u64,
    tallies: BTreeMap<String, Tally>,
    /// key → (connection, host, pid)
    claims: HashMap<Key, (u64, String, u32)>,
    marks: HashMap<String, Instant>,
    /// Open connections, and when the last request or close happened.
    pub active: u64,
    pub last: Option<Instant>,
    /// Worker threads parked in `accept`.
    pub idle_workers: u64,
    /// The socket of each open connection, to see which hung up.
    sockets: HashMap<u64, RawFd>,
    /// Connections blocked in a `Wait` (they read nothing until it ends).
    waiting: HashSet<u64>,
}

pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    pub cap: u64,
    /// Bytes of uploads still in progress, over every connection: together
    /// they may not pass the cap either, so N concurrent misses cannot hold
    /// N times the cap.
    pub uploading: AtomicU64,
    pub idle: Duration,
    pub started: Instant,
    /// The `--input` trees it watches.
    pub watches: crate::watch::serve::Watches,
}

/// The longest [`Shared::settle`] waits.
const SETTLE: Duration = Duration::from_secs(2);

impl Shared {
    pub fn new(cap: u64, idle: Duration) -> Shared {
        Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            cap,
            uploading: AtomicU64::new(0),
            idle,
            started: Instant::now(),
            watches: Default::default(),
        }
    }

    /// The state; a panic in another thread does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store an entry, evicting least recently used ones to stay under the
    /// cap; `false` (nothing stored) when it alone exceeds the cap.
    pub fn insert(&self, key: Key, namespace: String, created_ms: u64, data: Data) -> bool {
        let size = data.meta.len() as u64 + data.len;
        let mut st = self.lock();
        st.remove(&key);
        if size > self.cap {
            return false;
        }
        while st.bytes + size > self.cap {
            let Some((_, old)) = st.lru.pop_first() else {
                break;
            };
            st.remove(&old);
        }
        st.tick += 1;
        st.seq += 1;
        let (tick, seq) = (st.tick, st.seq);
        st.lru.insert(tick, key);
        st.bytes += size;
        st.entries.insert(
            key,
            Slot {
                data: Arc::new(data),
                namespace,
                created_ms,
                last_used_ms: created_ms,
                hits: 0,
                size,
                tick,
                seq,
            },
        );
        drop(st);
        self.changed.notify_all();
        true
    }

    /// Try to claim `key` for connection `conn`: `None` when we own it now,
    /// else who does.
    pub fn claim(&self, conn: u64, key: Key, host: String, pid: u32) -> Option<(String, u32)> {
        let mut st = self.lock();
        if let Some((_, h, p)) = st.claims.get(&key) {
            return Some((h.clone(), *p));
        }
        st.claims.insert(key, (conn, host, pid));
        None
    }

    pub fn release(&self, conn: u64, key: &Key) {
        let mut st = self.lock();
        if st.claims.get(key).is_some_and(|c| c.0 == conn) {
            st.claims.remove(key);
            drop(st);
            self.changed.notify_all();
        }
    }

    /// A connection opened; `socket` stays open until [`Shared::hang_up`].
    pub fn hello(&self, conn: u64, socket: RawFd) {
        self.lock().sockets.insert(conn, socket);
    }

    /// A connection closed: its claims go at once, and waiters wake.
    pub fn hang_up(&self, conn: u64) {
        let mut st = self.lock();
        st.sockets.remove(&conn);
        st.claims.retain(|_, c| c.0 != conn);
        st.active = st.active.saturating_sub(1);
        st.last = Some(Instant::now());
        drop(st);
        self.changed.notify_all();
    }

    /// Block until nobody claims `key` or a new entry for it is stored;
    /// `false` when `timeout` passes first.
    pub fn wait(&self, conn: u64, key: &Key, timeout: Option<Duration>) -> bool {
        let mut st = self.lock();
        st.waiting.insert(conn);
        drop(st);
        let done = self.wait_for(key, timeout);
        self.lock().waiting.remove(&conn);
        done
    }

    fn wait_for(&self, key: &Key, timeout: Option<Duration>) -> bool {
        let deadline = Deadline::after(timeout);
        let mut st = self.lock();
        let before = st.entries.get(key).map_or(0, |s| s.seq);
        loop {
            let stored = st.entries.get(key).is_some_and(|s| s.seq > before);
            if stored || !st.claims.contains_key(key) {
                return true;
            }
            st = match deadline.remaining() {
                None => self.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(left) => {
                    if left.is_zero() {
                        return false;
                    }
                    self.changed
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Wait (at most [`SETTLE`]) until every connection whose client hung
    /// up (and that is not blocked in a `Wait`) has been read to its end: what a finished process sent without
    /// awaiting a reply (its counted hit) shows in what comes next.
    pub fn settle(&self, me: u64) {
        let deadline = Instant::now() + SETTLE;
        let mut st = self.lock();
        loop {
            let hung = st.sockets.iter().any(|(conn, fd)| {
                // SAFETY: a socket stays open while it is registered, and
                // the registry is locked.
                let fd = unsafe { BorrowedFd::borrow_raw(*fd) };
                let mut fds = [PollFd::new(&fd, PollFlags::RDHUP)];
                *conn != me
                    && !st.waiting.contains(conn)
                    && rustix::event::poll(&mut fds, Some(&Timespec::default())).is_ok()
                    && fds[0]
                        .revents()
                        .intersects(PollFlags::RDHUP | PollFlags::HUP)
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if !hung || left.is_zero() {
                return;
            }
            st = self
                .changed
                .wait_timeout(st, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn status(&self) -> Status {
        let st = self.lock();
        Status {
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            entries: st.entries.len() as u64,
            bytes: st.bytes,
            hits: st.tallies.values().map(|t| t.hits).sum(),
            max_memory: self.cap,
            idle_timeout_ms: self.idle.as_millis() as u64,
            connections: st.active,
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: super::proto::protocol(),
            uploading: self.uploading.load(Ordering::Relaxed),
            pooled: crate::store::pool::open_servers(),
            watched: self.watches.counts(),
        }
    }
}

impl State {
    /// Remove the entry of `key`; the bytes freed.
    pub fn remove(&mut self, key: &Key) -> u64 {
        let Some(slot) = self.entries.remove(key) else {
            return 0;
        };
        self.lru.remove(&slot.tick);
        self.bytes -= slot.size;
        slot.size
    }

    /// The entry of `key`, marked as just used.
    pub fn get(&mut self, key: &Key) -> Option<&Slot> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.entries.get_mut(key)?;
        self.lru.remove(&slot.tick);
        slot.tick = tick;
        self.lru.insert(tick, *key);
        Some(slot)
    }

    pub fn list(&self, namespace: Option<&str>) -> impl Iterator<Item = &Slot> {
        self.entries
            .values()
            .filter(move |s| namespace.is_none_or(|n| n == s.namespace))
    }

    pub fn record(&mut self, namespace: &str, key: &Key, event: Ev) {
        let tally = self.tallies.entry(namespace.to_string()).or_default();
        match event {
            Ev::Hit { saved_ms } => {
                tally.hits += 1;
                tally.saved_ms += saved_ms;
                if let Some(slot) = self.entries.get_mut(key) {
                    slot.hits += 1;
                    slot.last_used_ms = crate::entry::now_ms();
                }
            }
            Ev::Miss => tally.misses += 1,
            Ev::Wait => tally.waits += 1,
            Ev::StaleServe => tally.stale_serves += 1,
        }
    }

    /// Per namespace: entries, bytes, hits, misses, waits, stale serves, saved ms.
    pub fn counters(&self) -> Vec<(String, [u64; 7])> {
        let mut out: BTreeMap<String, [u64; 7]> = BTreeMap::new();
        for (ns, t) in &self.tallies {
            let row = out.entry(ns.clone()).or_default();
            row[2..].copy_from_slice(&[t.hits, t.misses, t.waits, t.stale_serves, t.saved_ms]);
        }
        for slot in self.entries.values() {
            let row = out.entry(slot.namespace.clone()).or_default();
            row[0] += 1;
            row[1] += slot.size;
        }
        out.into_iter().collect()
    }

    pub fn reset_counters(&mut self) {
        self.tallies
            .values_mut()
            .for_each(|t| *t = Tally::default());
        self.entries.values_mut().for_each(|s| s.hits = 0);
    }

    /// `true` at most once per `interval` for `what`.
    pub fn once_per(&mut self, what: &str, interval: Duration) -> bool {
        let now = Instant::now();
        if self
            .marks
            .get(what)
            .is_some_and(|at| now.duration_since(*at) < interval)
        {
            return false;
        }
        self.marks.insert(what.to_string(), now);
        true
    }

    /// Test only: every entry `ms` older.
    pub fn age(&mut self, ms: u64) {
        for slot in self.entries.values_mut() {
            slot.created_ms = slot.created_ms.saturating_sub(ms);
        }
    }

    /// Test only: cut every non-empty body short (its last chunk goes) or
    /// flip its first byte.
    pub fn damage(&mut self, truncate: bool) -> std::io::Result<()> {
        for slot in self.entries.values_mut() {
            let body = slot.data.body.damaged(truncate)?;
            slot.data = Arc::new(Data {
                meta: slot.data.meta.clone(),
                len: body.len(),
                body,
            });
        }
        Ok(())
    }
}
