//! The `redis` store: one Redis server, or a Redis Cluster (a comma-separated
//! list of node URLs), over the synchronous `redis` client; `rediss://` is
//! TLS (rustls on ring; `#insecure` at the URL's end skips the check).
//!
//! ```text
//! {P:K}:m                  hash: meta (CBOR), gen, chunks, created, used, hits, size, ns
//! {P:K}:c:<gen>:<n>        chunk n (≤ 1 MiB) of generation gen: stdout then stderr
//! {P:K}:claim              single-flight claim: "host\tpid\trandom", PX lease
//! P:done:K                 channel the claim's release is published on
//! {P}:counters             hash: "<counter>:<namespace>" → HINCRBY totals
//! {P}:mark:<what>          rate limits of background clean-up (SET NX PX)
//! ```
//! `P` is the key prefix (`CACHIER_REDIS_PREFIX`, config `redis_prefix`,
//! default `cachier`), `K` the entry key in hex. One entry's keys share the
//! hash tag `{P:K}`: one cluster slot, so a Lua script publishes it whole.
//! With `--stale-after` an entry's keys expire on the server once it has
//! been stale as long again as its staleness (at least a minute more).
//!
//! Nothing connects until the first call. Timeouts: connect
//! [`conn::CONNECT_TIMEOUT`] (1 s), each command [`conn::OP_TIMEOUT`] (5 s);
//! after one failure the run stops asking. A server that accepts but never
//! answers is given up in about 2 s (a cluster in 2.5 s in all, however
//! many of its seeds hang); one that hangs mid-run costs at most
//! one operation timeout, and a finished owner waits at most 2 s for its
//! release to go through. Single-flight is a lease (see
//! `claim.rs`): [`claim::LEASE`] 6 s, renewed every [`claim::HEARTBEAT`]
//! 2 s, waiters woken by pub/sub and polling every [`claim::POLL`] 500 ms,
//! so a dead owner's claim is taken over within about 6.5 s.
#[cfg(feature = "redis")]
mod body;
#[cfg(feature = "redis")]
mod claim;
#[cfg(feature = "redis")]
mod conn;
#[cfg(feature = "redis")]
mod keys;
#[cfg(feature = "redis")]
mod lazy;
#[cfg(feature = "redis")]
mod scan;
#[cfg(feature = "redis")]
mod store;

use super::Store;
use crate::settings::Settings;

/// Whether the settings this backend needs (its URL, its prefix) are usable.
#[cfg(feature = "redis")]
pub fn check(settings: &Settings) -> Result<(), String> {
    store::check(settings)
}

#[cfg(feature = "redis")]
pub fn open(settings: &Settings) -> Box<dyn Store> {
    store::open(settings)
}

#[cfg(not(feature = "redis"))]
pub fn check(_settings: &Settings) -> Result<(), String> {
    Ok(())
}

#[cfg(not(feature = "redis"))]
pub fn open(_settings: &Settings) -> Box<dyn Store> {
    super::unavailable::unbuilt("Redis", "redis")
}
