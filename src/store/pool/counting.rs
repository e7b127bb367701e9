//! Counts the daemon has taken but not yet written, per target: a hit's
//! client is answered as soon as its count is taken, and a later reader
//! of counts or listings (through `PoolSync`) waits for the writes, so
//! what a user reads after a hit includes it.
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Counts being written, by the hash of their target.
static TAKEN: Mutex<Option<HashMap<[u8; 32], usize>>> = Mutex::new(None);
static WRITTEN: Condvar = Condvar::new();

fn taken() -> MutexGuard<'static, Option<HashMap<[u8; 32], usize>>> {
    TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One count taken for a target, until it is dropped (written or failed).
pub struct Counting {
    id: [u8; 32],
}

impl Counting {
    pub fn begin(target: &[u8]) -> Counting {
        let id = *blake3::hash(target).as_bytes();
        *taken()
            .get_or_insert_with(HashMap::new)
            .entry(id)
            .or_default() += 1;
        Counting { id }
    }

    /// Wait until no count of `target` is being written, for `limit` at
    /// most (a stuck server must not stall a reader for longer).
    pub fn settle(target: &[u8], limit: Duration) {
        let id = blake3::hash(target);
        let until = Instant::now() + limit;
        let mut guard = taken();
        while guard
            .as_ref()
            .and_then(|m| m.get(id.as_bytes()))
            .is_some_and(|&n| n > 0)
        {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            guard = match WRITTEN.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        let mut guard = taken();
        if let Some(map) = guard.as_mut()
            && let Some(n) = map.get_mut(&self.id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.id);
            }
        }
        drop(guard);
        WRITTEN.notify_all();
    }
}
