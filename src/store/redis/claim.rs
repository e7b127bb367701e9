//! Single-flight across machines: a lease on a claim key.
//!
//! The owner takes the claim with `SET NX PX` and a token naming it (host,
//! pid, random). A heartbeat thread on its own connection renews the lease
//! every [`HEARTBEAT`] while the command runs; dropping the lease releases
//! the claim if it is still ours (compare-and-delete in Lua) and publishes
//! on the key's channel. Waiters subscribe to that channel, so they wake as
//! soon as the owner is done, and poll the claim every [`POLL`] only to
//! notice an owner that died: its lease lapses at most [`LEASE`] after its
//! last renewal, so a waiter takes over within `LEASE + POLL` (6.5 s).
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::Result;

use super::conn::{Conn, Target};
use super::store::Inner;
use crate::key::Key;
use crate::store::kit::{Deadline, Heartbeat};
use crate::store::{Claim, Holder};

/// How long a claim lives without a renewal.
pub const LEASE: Duration = Duration::from_secs(6);
/// How often the owner renews its claim.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How often a waiter checks the claim besides listening for its release.
pub const POLL: Duration = Duration::from_millis(500);
/// How long a finished owner waits for its release to reach a server in
/// trouble; past it the claim is left to lapse.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'done')
  return 1
end
return 0";

/// 16 hex digits nobody else picks: a claim token's tail, a generation id.
pub fn token_random() -> String {
    format!("{:016x}", crate::store::kit::random_u64())
}

/// The holder a claim token names.
fn holder(token: &str) -> Option<Holder> {
    let mut parts = token.split('\t');
    let host = parts.next()?.to_string();
    let pid = parts.next()?.parse().ok()?;
    Some(Holder { host, pid })
}

pub fn claim(store: &Inner, key: &Key, me: &Holder) -> Result<Claim> {
    let name = store.names.claim(key);
    let token = format!("{}\t{}\t{}", me.host, me.pid, token_random());
    let got: Option<String> = store.lazy.with(|c| {
        redis::cmd("SET")
            .arg(&name)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LEASE.as_millis() as u64)
            .query(c)
    })?;
    if got.is_none() {
        let now: Option<String> = store.lazy.with(|c| redis::cmd("GET").arg(&name).query(c))?;
        return Ok(Claim::Busy(now.as_deref().and_then(holder)));
    }
    let target = store.lazy.target()?.clone();
    let channel = store.names.channel(key);
    Ok(Claim::Owner(Box::new(Heartbeat::start(
        RELEASE_WAIT,
        move |stopped| heartbeat(&target, &name, &token, &channel, stopped),
    ))))
}

/// Renew the claim until told to stop, then release it. Failures are
/// silent: the run already warns about a server in trouble, and a claim we
/// cannot renew lapses by itself.
fn heartbeat(target: &Target, name: &str, token: &str, channel: &str, stop: mpsc::Receiver<()>) {
    let mut conn: Option<Conn> = target.connect().ok();
    let renew = redis::Script::new(RENEW);
    // Ends when the lease is dropped (the sender goes).
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(HEARTBEAT) {
        if conn.is_none() {
            conn = target.connect().ok();
        }
        if let Some(c) = conn.as_mut() {
            let renewed = renew
                .key(name)
                .arg(token)
                .arg(LEASE.as_millis() as u64)
                .invoke::<i64>(c.like());
            if renewed.is_err() {
                conn = None;
            }
        }
    }
    if conn.is_none() {
        conn = target.connect().ok();
    }
    if let Some(c) = conn.as_mut() {
        let _ = redis::Script::new(RELEASE)
            .key(name)
            .arg(token)
            .arg(channel)
            .invoke::<i64>(c.like());
    }
}

/// Block until the claim on `key` is released or lapses; `false` when
/// `timeout` passes first.
pub fn wait(store: &Inner, key: &Key, timeout: Option<Duration>) -> Result<bool> {
    let deadline = Deadline::after(timeout);
    let target = store.lazy.target()?;
    let claim = store.names.claim(key);
    let mut node = target.node()?;
    let mut sub = node.as_pubsub();
    sub.subscribe(store.names.channel(key))
        .map_err(|e| target.failed(&e))?;
    loop {
        // Checked after subscribing, so no release goes unheard.
        let held: bool = store
            .lazy
            .with(|c| redis::cmd("EXISTS").arg(&claim).query(c))?;
        if !held {
            return Ok(true);
        }
        if deadline.passed() {
            return Ok(false);
        }
        let slice = deadline.left(POLL).max(Duration::from_millis(1));
        sub.set_read_timeout(Some(slice))
            .map_err(|e| target.failed(&e))?;
        match sub.get_message() {
            Ok(_) => return Ok(true),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(target.failed(&e)),
        }
    }
}

/// Whether a claim with `pttl` ms to live has missed its renewals: a live
/// owner keeps it above `LEASE - HEARTBEAT`.
pub fn looks_dead(pttl: i64) -> bool {
    pttl == -1 || (pttl >= 0 && (pttl as u128) < (LEASE - 2 * HEARTBEAT).as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_holder() {
        let t = format!("host-a\t42\t{}", token_random());
        assert_eq!(
            holder(&t),
            Some(Holder {
                host: "host-a".into(),
                pid: 42
            })
        );
        assert_ne!(token_random(), token_random());
        assert!(looks_dead(-1) && looks_dead(500) && !looks_dead(5000));
    }
}
