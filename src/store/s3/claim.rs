//! Single-flight across machines: a claim object per key with a lease.
//!
//! The owner creates `claim/<key>` with `If-None-Match: *` (one caller
//! wins, the rest get 412), holding "host\tpid\ttoken". A heartbeat thread
//! rewrites it every [`HEARTBEAT`] with `If-Match: <etag>`, which moves its
//! `Last-Modified`; a claim not rewritten for [`LEASE`] has lapsed, judged
//! by the server's clock alone (its `Last-Modified` against the `Date` of
//! the reply that shows it), never by comparing machines' clocks. A lapsed
//! claim is taken over with `If-Match` of the etag seen, so of racing
//! callers one wins. Release deletes the claim only while it is still
//! ours (token read back, then a delete with `If-Match`).
//!
//! Waiters watch the entry, not the claim: they HEAD `e/<key>` every
//! [`POLL_FIRST`] doubling to [`POLL_MAX`] (less up to a quarter, at random,
//! so many waiters do not poll in step) and wake when its ETag differs from
//! what their last read of the key saw: a stored result is noticed within
//! 100 ms of its upload completing, before the owner has even released its
//! claim. The claim itself is HEADed at once and then every
//! [`CLAIM_EVERY`]: an owner that finished without storing (it released)
//! is noticed within 1 s, a dead one within `LEASE` + 1 s (the dates'
//! resolution) + `CLAIM_EVERY`, about 8 s. A poller costs at most 11
//! requests a second (10 HEADs of the entry, 1 of the claim), and a
//! machine has one per key however many of its processes wait
//! (`watch.rs`).
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Result;
use rusty_s3::actions::{DeleteObject, GetObject, HeadObject, PutObject};

use super::conn::{Conn, Header, Reply, sign};
use super::store::Shared;
use crate::key::Key;
use crate::store::kit::{Deadline, Heartbeat, random_u64};
use crate::store::{Claim, Holder, Lease};

pub const LEASE: Duration = Duration::from_secs(6);
pub const HEARTBEAT: Duration = Duration::from_secs(2);
pub const POLL_FIRST: Duration = Duration::from_millis(20);
pub const POLL_MAX: Duration = Duration::from_millis(100);
/// How often a waiter also looks at the claim.
pub const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// How long a finished owner waits for its release to go through.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Whether the claim in `reply` has lapsed, by the server's clock.
pub fn lapsed(reply: &Reply) -> bool {
    // A server that dates nothing: trust the claim while it exists.
    reply.age().is_some_and(|age| age > LEASE)
}

/// PUT the claim under `cond` (`if-none-match: *` or `if-match: etag`):
/// its new etag, or `None` when the condition failed.
fn put(c: &Conn, name: &str, body: &str, cond: Header) -> Result<Option<String>> {
    let headers = [cond];
    let url = sign(PutObject::new(&c.bucket, Some(&c.creds), name), &headers);
    let mut reply = c.send("PUT", &url, &headers, body.as_bytes())?;
    match reply.status {
        200..300 => Ok(Some(reply.etag.take().unwrap_or_default())),
        // 409: a concurrent conditional write on the same name.
        412 | 409 => Ok(None),
        _ => Err(c.refused("write a claim", &mut reply)),
    }
}

/// The claim object's reply (body unread), or `None` if there is none.
fn look(c: &Conn, name: &str, head: bool) -> Result<Option<Reply>> {
    fetch(c, name, head, "read a claim")
}

/// GET (or HEAD) object `name`; `None` if there is no such object, and a
/// refusal said as failing to `what`.
fn fetch(c: &Conn, name: &str, head: bool, what: &str) -> Result<Option<Reply>> {
    let url = if head {
        sign(HeadObject::new(&c.bucket, Some(&c.creds), name), &[])
    } else {
        sign(GetObject::new(&c.bucket, Some(&c.creds), name), &[])
    };
    let mut reply = c.send(if head { "HEAD" } else { "GET" }, &url, &[], &[])?;
    match reply.status {
        200 => Ok(Some(reply)),
        404 => Ok(None),
        _ => Err(c.refused(what, &mut reply)),
    }
}

fn holder(text: &str) -> Option<Holder> {
    let mut parts = text.split('\t');
    let host = parts.next()?.to_string();
    let pid = parts.next()?.parse().ok()?;
    Some(Holder { host, pid })
}

pub fn claim(store: &Shared, key: &Key, me: &Holder) -> Result<Claim> {
    // (A read-only store is claimed through `ReadOnly`, which only waits.)
    if store.lazy.config().read_only || !super::probe::conditional(store)? {
        return Ok(Claim::Owner(Box::new(NoLease)));
    }
    let name = store.names.claim(key);
    let body = format!("{}\t{}\t{:016x}", me.host, me.pid, random_u64());
    let c = store.lazy.conn()?;
    let create = ("if-none-match", "*".to_string());
    let mut etag = store.lazy.with(|c| put(c, &name, &body, create.clone()))?;
    if etag.is_none() {
        let seen = store.lazy.with(|c| look(c, &name, false))?;
        etag = match seen {
            // Released in between: try once more.
            None => store.lazy.with(|c| put(c, &name, &body, create))?,
            Some(mut reply) if lapsed(&reply) => {
                let old = reply.etag.take().unwrap_or_default();
                store
                    .lazy
                    .with(|c| put(c, &name, &body, ("if-match", old)))?
            }
            Some(mut reply) => {
                let text = reply.text(4096).unwrap_or_default();
                return Ok(Claim::Busy(holder(&text)));
            }
        };
    }
    let Some(etag) = etag else {
        return Ok(Claim::Busy(None));
    };
    Ok(Claim::Owner(Box::new(Heartbeat::start(
        RELEASE_WAIT,
        move |stopped| heartbeat(&c, &name, &body, etag, stopped),
    ))))
}

/// Single-flight is off for a store that ignores conditional writes.
struct NoLease;

impl Lease for NoLease {}

/// Renew the claim until told to stop, then release it if still ours.
/// Failures are silent: a claim we cannot renew lapses by itself.
fn heartbeat(c: &Conn, name: &str, body: &str, mut etag: String, stop: mpsc::Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(HEARTBEAT) {
        match put(c, name, body, ("if-match", etag.clone())) {
            Ok(Some(new)) => etag = new,
            // Taken over (this process stalled past its lease): not ours.
            Ok(None) => return,
            Err(_) => {}
        }
    }
    let _ = release(c, name, body, &etag);
}

fn release(c: &Conn, name: &str, body: &str, etag: &str) -> Result<()> {
    let Some(mut reply) = look(c, name, false)? else {
        return Ok(());
    };
    if reply.text(4096)? != body {
        return Ok(());
    }
    let headers = [(
        "if-match",
        reply.etag.clone().unwrap_or_else(|| etag.to_string()),
    )];
    let url = sign(DeleteObject::new(&c.bucket, Some(&c.creds), name), &headers);
    c.send("DELETE", &url, &headers, &[])?;
    Ok(())
}

/// Poll the bucket until the entry of `key` changes from what this process
/// last read of it, or nobody holds a live claim on it; `false` once
/// `deadline` passes. (One waiter a machine does this: see `watch.rs`.)
pub fn poll(store: &Shared, key: &Key, deadline: Deadline) -> Result<bool> {
    let (claim, entry) = (store.names.claim(key), store.names.entry(key));
    // The entry's ETag (`None`: absent) as last read; if it was not read,
    // as first polled.
    let mut before = store.seen.borrow().get(key).cloned();
    let mut pause = POLL_FIRST;
    // The claim first: a read-only caller's probe is one look at it.
    let mut claim_due = Instant::now();
    loop {
        if Instant::now() >= claim_due {
            match store.lazy.with(|c| look(c, &claim, true))? {
                None => return Ok(true),
                Some(reply) if lapsed(&reply) => return Ok(true),
                Some(_) => {}
            }
            claim_due = Instant::now() + CLAIM_EVERY;
        } else {
            let now = store.lazy.with(|c| etag(c, &entry))?;
            match &before {
                Some(was) if *was != now => return Ok(true),
                Some(_) => {}
                None => before = Some(now),
            }
        }
        if deadline.passed() {
            return Ok(false);
        }
        std::thread::sleep(deadline.left(jittered(pause)));
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// The ETag of object `name` (empty if the server gives none), or `None`
/// if there is no such object.
fn etag(c: &Conn, name: &str) -> Result<Option<String>> {
    let reply = fetch(c, name, true, "read an entry")?;
    Ok(reply.map(|r| r.etag.unwrap_or_default()))
}

/// `pause` less up to a quarter of it, at random.
fn jittered(pause: Duration) -> Duration {
    pause.mul_f64(1.0 - (random_u64() % 1024) as f64 / 4096.0)
}

/// Delete the claims whose lease lapsed; how many went.
pub fn clear(store: &Shared) -> Result<u64> {
    let mut gone = 0;
    for (name, _) in super::store::list(store, &store.names.claims())? {
        let Some(reply) = store.lazy.with(|c| look(c, &name, true))? else {
            continue;
        };
        if lapsed(&reply) {
            store.lazy.with(|c| super::store::delete(c, &name))?;
            gone += 1;
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_read() {
        assert_eq!(
            holder("h\t42\tabc"),
            Some(Holder {
                host: "h".into(),
                pid: 42
            })
        );
        assert_eq!(holder("garbage"), None);
    }

    #[test]
    fn jitter_only_shortens_a_pause_by_up_to_a_quarter() {
        for _ in 0..1000 {
            let p = jittered(POLL_MAX);
            assert!(p <= POLL_MAX && p >= POLL_MAX * 3 / 4, "{p:?}");
        }
    }
}
