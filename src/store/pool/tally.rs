//! The counts pooled clients send the daemon, summed per store, namespace
//! and entry and written in bursts: a client's hit waits for no count, and
//! a run of hits costs the server one write per entry, not two per hit.
//! Written [`DELAY`] after the first count of a burst, at once when a
//! reader of counts asks (`PoolSettle`), and before the daemon exits; a
//! daemon killed outright loses at most that last burst's counts.
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::entry::Event;
use crate::key::Key;

use super::serve::with_store;

/// How long counts wait to be written with the ones after them.
const DELAY: Duration = Duration::from_millis(100);

/// Counts not yet written: by target (its bytes), then namespace and key,
/// summed as [`Event::deltas`] sums them.
type Sums = BTreeMap<Vec<u8>, BTreeMap<(String, [u8; 32]), [i64; 5]>>;

static PENDING: Mutex<Sums> = Mutex::new(BTreeMap::new());
/// Wakes the writer when counts come.
static WOKEN: Condvar = Condvar::new();
/// Held while counts are written, so that [`flush`] returns only once
/// every count taken before it is on the server.
static WRITING: Mutex<()> = Mutex::new(());
/// Whether the writer thread runs (else each count is written at once).
static WRITER: OnceLock<bool> = OnceLock::new();

fn pending() -> MutexGuard<'static, Sums> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Add one replay's events for `target`, to be written shortly.
pub fn add(target: &[u8], namespace: &str, key: &Key, events: &[Event]) {
    {
        let mut p = pending();
        let sums = p
            .entry(target.to_vec())
            .or_default()
            .entry((namespace.to_string(), key.0))
            .or_default();
        for event in events {
            for (sum, n) in sums.iter_mut().zip(event.deltas()) {
                *sum = sum.saturating_add(n);
            }
        }
    }
    let writing = *WRITER.get_or_init(|| {
        std::thread::Builder::new()
            .name("pool-counts".into())
            .spawn(writer)
            .is_ok()
    });
    if writing {
        WOKEN.notify_one();
    } else {
        flush();
    }
}

/// The writer thread: [`DELAY`] after counts come, write them all. One
/// thread, so its pooled connections (see `with_store`) stay open.
fn writer() {
    loop {
        {
            let mut p = pending();
            while p.is_empty() {
                p = WOKEN.wait(p).unwrap_or_else(|e| e.into_inner());
            }
        }
        std::thread::sleep(DELAY);
        flush();
    }
}

/// Write every count added so far, and return once they are written (or
/// failed: a count is worth no retry).
pub fn flush() {
    let _writing = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    let sums = std::mem::take(&mut *pending());
    for (target, counts) in sums {
        for ((namespace, key), deltas) in counts {
            let _ = with_store(&target, false, |store| {
                store.record_sum(&namespace, &Key(key), deltas)
            });
        }
    }
}
