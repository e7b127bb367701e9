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
use super::param::{Common, Kind, Param, Section};
use super::registry::Def;

pub static DEF: Def = Def {
    name: "redis",
    aliases: &[],
    reach: 3,
    params: &[
        Param {
            key: "redis_url",
            var: "CACHIER_REDIS_URL",
            flag: Some("redis-url"),
            tier_key: Some("url"),
            kind: Kind::Text,
            value_name: "URL",
            help: "The redis backend's server: redis://[user:pass@]host:port/db (rediss:// for TLS); \
                   a comma-separated list of node URLs selects Redis Cluster [env: CACHIER_REDIS_URL]",
        },
        Param {
            key: "redis_prefix",
            var: "CACHIER_REDIS_PREFIX",
            flag: None,
            tier_key: None,
            kind: Kind::Text,
            value_name: "PREFIX",
            help: "What every Redis key of this cache starts with [default: cachier]",
        },
    ],
    check,
    open,
    pooled: |_| true,
};

/// Where the server is when no URL is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";
/// The key prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "cachier";

/// The redis backend's settings, defaults applied; each value remembers
/// where it came from, for messages.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    pub url_from: String,
    pub prefix: String,
    pub prefix_from: String,
}

impl RedisConfig {
    pub fn from_section(section: &Section) -> RedisConfig {
        let (url, url_from) = section
            .text("redis_url")
            .unwrap_or((DEFAULT_URL, "--redis-url"));
        let (prefix, prefix_from) = section
            .text("redis_prefix")
            .unwrap_or((DEFAULT_PREFIX, "CACHIER_REDIS_PREFIX"));
        RedisConfig {
            url: url.to_string(),
            url_from: url_from.to_string(),
            prefix: prefix.to_string(),
            prefix_from: prefix_from.to_string(),
        }
    }
}

#[cfg(feature = "redis")]
fn check(section: &Section, _: &Common) -> Result<(), String> {
    store::check(&RedisConfig::from_section(section))
}

#[cfg(feature = "redis")]
fn open(section: &Section, ctx: &Common) -> Box<dyn Store> {
    store::open(
        RedisConfig::from_section(section),
        ctx.stale_after,
        ctx.compression,
    )
}

#[cfg(not(feature = "redis"))]
fn check(_: &Section, _: &Common) -> Result<(), String> {
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn open(_: &Section, _: &Common) -> Box<dyn Store> {
    super::unavailable::unbuilt("Redis", "redis")
}
