//! Serving from a lower tier: fetch and verify its copy, then, once it is
//! replayed, copy it into the tiers above, a chunk at a time (constant memory).
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::Shared;
use crate::entry::{Body, Corrupt, Meta, Stream};
use crate::key::Key;
use crate::store::{Fetch, Found};

/// A body already fetched and verified.
pub struct Ready(pub Body);

impl Fetch for Ready {
    fn fetch(self: Box<Self>) -> Result<Body> {
        Ok(self.0)
    }
}

/// A served entry still to be copied into the tiers above `from`.
pub struct Pending {
    pub from: usize,
    pub meta: Meta,
    /// A second handle on the verified body; `None` if it could not be had.
    pub body: Option<Body>,
}

/// After a replayed hit: copy the entry into the tiers above the one that
/// served it, and say so under -v.
pub fn after_hit(
    shared: &Shared,
    key: &Key,
    pending: Pending,
    stale_after: Option<Duration>,
    max_age: Option<Duration>,
) -> Result<()> {
    let filled = match &pending.body {
        Some(body) => fill(
            shared,
            pending.from,
            &pending.meta,
            body,
            stale_after,
            max_age,
        )?,
        None => Vec::new(),
    };
    shared.verbose(&format!(
        "tier {} served {}{}",
        shared.levels[pending.from].name,
        key.short(),
        if filled.is_empty() {
            String::new()
        } else {
            format!("; copied into {}", filled.join(", "))
        }
    ));
    Ok(())
}

/// What fetching one tier's copy gave.
pub enum Fetched {
    Good(Box<(Meta, Body)>),
    /// Corrupt, and removed from that tier: the error, for when no tier serves.
    Corrupt(anyhow::Error),
    /// The tier failed (and was warned about and skipped).
    Failed,
}

/// Tier `i`'s entry, fetched and verified.
pub fn fetch(shared: &Shared, i: usize, found: Found) -> Result<Fetched> {
    let meta = found.meta;
    let body = match found.body.fetch() {
        Ok(body) => body,
        Err(e) if e.downcast_ref::<Corrupt>().is_some() => {
            return discard(shared, i, &meta.key, &meta.namespace, e).map(Fetched::Corrupt);
        }
        Err(e) => {
            shared.trouble(i, e)?;
            return Ok(Fetched::Failed);
        }
    };
    if let Err(e) = body.verify(&meta) {
        return discard(shared, i, &meta.key, &meta.namespace, e.into()).map(Fetched::Corrupt);
    }
    Ok(Fetched::Good(Box::new((meta, body))))
}

/// Drop tier `i`'s corrupt copy of `key`. Under `--strict` the corruption
/// is the error; else it is handed back, to be reported once.
pub fn discard(
    shared: &Shared,
    i: usize,
    key: &Key,
    namespace: &str,
    err: anyhow::Error,
) -> Result<anyhow::Error> {
    // A read-only tier keeps it (skipped, and reported once).
    if shared.levels[i].store.writable() {
        let _ = shared.levels[i].store.remove(key, namespace);
    }
    if shared.strict {
        return Err(err);
    }
    Ok(err)
}

/// Copy an entry served by tier `from` into every working tier above it
/// that would serve it (fresh by that tier's bound, else the call's
/// `stale_after`, and within `max_age`); the names of the tiers that took it.
pub fn fill(
    shared: &Shared,
    from: usize,
    meta: &Meta,
    body: &Body,
    stale_after: Option<Duration>,
    max_age: Option<Duration>,
) -> Result<Vec<&'static str>> {
    let age = meta.age(SystemTime::now());
    let mut filled = Vec::new();
    for i in 0..from {
        let bound = shared.levels[i].stale_after.or(stale_after);
        let servable = [bound, max_age].iter().flatten().all(|b| age <= *b);
        if !shared.up(i) || !servable || !shared.levels[i].store.writable() {
            continue;
        }
        match copy(shared, i, &meta.key, meta, body) {
            Ok(()) => filled.push(shared.levels[i].name),
            Err(e) => shared.trouble(i, e)?,
        }
    }
    Ok(filled)
}

fn copy(shared: &Shared, i: usize, key: &Key, meta: &Meta, body: &Body) -> Result<()> {
    let mut spool = shared.levels[i].store.begin(key)?;
    for stream in [Stream::Stdout, Stream::Stderr] {
        body.each_chunk(meta.offset(stream), meta.len(stream), |chunk| {
            spool.write(stream, chunk)
        })?;
    }
    let files = meta.outputs.len;
    body.each_chunk(meta.outputs_offset(), files, |chunk| {
        spool.write_outputs(chunk)
    })?;
    spool.commit(meta)
}
