//! Counters on a store with no atomic increment: every run's events are a
//! small delta object of their own (`counts/d/<random>`, one PUT, no read,
//! no lock: a waited hit is one object, not two), and the figures are the folded total (`counts/total`) plus the
//! deltas not folded yet. Reading them (`stats`, `ls`, `gc`) folds: the new
//! total, which names the deltas it took in, is written with `If-Match` of
//! the total read (`If-None-Match: *` for the first), then those deltas are
//! deleted. Of two folds at once one wins, the other reads again; a fold
//! that died before deleting leaves deltas the total already names, which
//! are skipped and deleted by the next, so no count is lost or counted
//! twice. A total also keeps each entry's hits and last use (for `ls` and
//! LRU eviction). A read-only store adds the deltas up and writes nothing.
use std::collections::{BTreeMap, HashSet};

use anyhow::{Result, anyhow};
use rusty_s3::actions::{GetObject, PutObject};
use serde::{Deserialize, Serialize};

use super::conn::{Conn, sign};
use super::store::{Shared, delete, list};
use crate::entry::Event;
use crate::key::Key;
use crate::store::kit::random_u64;

/// Folded counters: per namespace hits, misses, waits, stale serves, saved
/// ms; per entry (key in hex) hits and last use (ms).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub ns: BTreeMap<String, [u64; 5]>,
    pub keys: BTreeMap<String, [u64; 2]>,
    /// The deltas this total took in (those still listed when it was made).
    folded: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Delta {
    ns: String,
    d: [i64; 5],
    key: Option<String>,
    at: u64,
}

/// How often a fold that lost a race reads again.
const TRIES: usize = 5;

impl Totals {
    fn add(&mut self, delta: &Delta) {
        let sums = self.ns.entry(delta.ns.clone()).or_default();
        for (s, d) in sums.iter_mut().zip(delta.d) {
            *s = s.saturating_add(d.max(0) as u64);
        }
        if let Some(key) = &delta.key {
            let k = self.keys.entry(key.clone()).or_default();
            k[0] += 1;
            k[1] = k[1].max(delta.at);
        }
    }

    /// An entry's hits and last use.
    pub fn of(&self, key: &Key) -> (u64, u64) {
        let hexed: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
        self.keys.get(&hexed).map_or((0, 0), |k| (k[0], k[1]))
    }
}

/// Count `events` for `namespace`: one new object for them all.
pub fn record(store: &Shared, namespace: &str, key: &Key, events: &[Event]) -> Result<()> {
    let hit = events.iter().any(|e| matches!(e, Event::Hit { .. }));
    let mut d = [0i64; 5];
    for event in events {
        for (sum, one) in d.iter_mut().zip(event.deltas()) {
            *sum = sum.saturating_add(one);
        }
    }
    let delta = Delta {
        ns: namespace.to_string(),
        d,
        key: hit.then(|| key.0.iter().map(|b| format!("{b:02x}")).collect()),
        at: crate::entry::now_ms(),
    };
    let body = serde_json::to_vec(&delta)?;
    let name = format!(
        "{}{:016x}{:016x}",
        store.names.deltas(),
        random_u64(),
        random_u64()
    );
    store
        .lazy
        .with(|c| super::body::put(c, &name, &body).map(drop))
}

/// The object `name` as JSON, with its etag; `None` if absent.
fn get_json<T: for<'de> Deserialize<'de>>(c: &Conn, name: &str) -> Result<Option<(T, String)>> {
    let url = sign(GetObject::new(&c.bucket, Some(&c.creds), name), &[]);
    let mut reply = c.send("GET", &url, &[], &[])?;
    match reply.status {
        200 => {}
        404 => return Ok(None),
        _ => return Err(c.refused("read the counters", &mut reply)),
    }
    let text = reply.text(64 << 20)?;
    let value = serde_json::from_str(&text)
        .map_err(|_| anyhow!("S3 object {name} holds unreadable counters"))?;
    Ok(Some((value, reply.etag.unwrap_or_default())))
}

/// The counters now, folding the deltas in; with `zero`, hits, misses,
/// waits and stale serves start again from nothing (last uses stay).
pub fn fold(store: &Shared, zero: bool) -> Result<Totals> {
    let read_only = store.lazy.config().read_only;
    if zero && read_only {
        return Err(anyhow!("the cache is read-only; cannot reset counters"));
    }
    let total_name = store.names.total();
    let mut last = Totals::default();
    for _ in 0..TRIES {
        let read = store.lazy.with(|c| get_json::<Totals>(c, &total_name))?;
        let (old, etag) = read.map_or((Totals::default(), None), |(t, e)| (t, Some(e)));
        let done: HashSet<&String> = old.folded.iter().collect();
        let mut new = Totals {
            folded: Vec::new(),
            ..old.clone()
        };
        for (name, _) in list(store, &store.names.deltas())? {
            if !done.contains(&name)
                && let Some((delta, _)) = store.lazy.with(|c| get_json::<Delta>(c, &name))?
            {
                new.add(&delta);
            }
            new.folded.push(name);
        }
        if zero {
            new.ns.values_mut().for_each(|n| *n = [0; 5]);
            new.keys.values_mut().for_each(|k| k[0] = 0);
        }
        let unchanged =
            new.folded.iter().all(|n| done.contains(n)) && new.folded.len() == old.folded.len();
        if read_only || (!zero && unchanged) {
            return Ok(new);
        }
        let cond = match etag {
            Some(e) => ("if-match", e),
            None => ("if-none-match", "*".to_string()),
        };
        let body = serde_json::to_vec(&new)?;
        let written = store.lazy.with(|c| {
            let headers = [cond];
            let url = sign(
                PutObject::new(&c.bucket, Some(&c.creds), &total_name),
                &headers,
            );
            let mut reply = c.send("PUT", &url, &headers, &body)?;
            match reply.status {
                200..300 => Ok(true),
                412 | 409 => Ok(false),
                _ => Err(c.refused("write the counters", &mut reply)),
            }
        })?;
        if written {
            for name in new.folded.iter().filter(|n| !done.contains(n)) {
                let _ = store.lazy.with(|c| delete(c, name));
            }
            return Ok(new);
        }
        last = new;
    }
    if zero {
        return Err(anyhow!(
            "the counters kept changing while they were reset; try again"
        ));
    }
    Ok(last)
}
