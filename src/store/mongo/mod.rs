//! The `mongo` store: entries as documents in a MongoDB database, over the
//! official async driver on a runtime made on first use (a `file` run
//! starts none).
//!
//! ```text
//! <coll>           {_id: key, ns, meta (CBOR), size, created, last_used, hits, gen, expires_at?}
//! <coll>.chunks    {key, gen, seq, data (≤ 1 MiB), expires_at?}   unique (key, gen, seq)
//! <coll>.claims    {_id: key, token, host, pid, lease_until}      single-flight, see claim.rs
//! <coll>.counters  {_id: namespace, hits, misses, waits, stale_serves, saved_ms}
//! <coll>.marks     {_id: what, at}                                rate limits of clean-up
//! ```
//! The database is the URL's path (default `cachier`), `<coll>` is
//! `--mongo-collection` (default `cachier`). A body is written as chunks
//! under a fresh generation id, then published by replacing the entry
//! document, which points at that generation; the replaced generation's
//! chunks go after. A reader so sees a whole entry or none, any output size
//! fits under the 16 MB document limit, and memory stays constant.
//!
//! Indexes are made once per process before it first writes an entry: `ns`,
//! (key, gen, seq), and TTL indexes on `expires_at`, set when entries go
//! stale (`--stale-after S`: S + max(S, 1 day) after the entry was made),
//! so the server drops abandoned entries itself.
//!
//! Timeouts: finding and connecting to a server gives up after
//! [`conn::CONNECT_TIMEOUT`] (1.5 s), any one operation after
//! [`conn::OP_TIMEOUT`] (10 s); a server that could not be reached is not
//! tried again by the same process. Single-flight: a 6 s lease renewed every
//! 2 s, waiters polling every 20 ms doubling to 100 ms, so a SIGKILLed
//! owner is taken over within about 6.1 s (see `claim.rs`).
#[cfg(feature = "mongo")]
mod body;
#[cfg(feature = "mongo")]
mod claim;
#[cfg(feature = "mongo")]
mod conn;
#[cfg(feature = "mongo")]
mod failure;
#[cfg(feature = "mongo")]
mod store;
mod url;

use super::Store;
use super::param::{Common, Kind, Param, Section};
use super::registry::Def;

pub static DEF: Def = Def {
    name: "mongo",
    aliases: &["mongodb"],
    reach: 3,
    params: &[
        Param {
            key: "mongo_url",
            var: "CACHIER_MONGO_URL",
            flag: Some("mongo-url"),
            tier_key: Some("url"),
            kind: Kind::Text,
            value_name: "URL",
            help: "The mongo backend's server: mongodb://[user:pass@]host:port/db [env: CACHIER_MONGO_URL]",
        },
        Param {
            key: "mongo_collection",
            var: "CACHIER_MONGO_COLLECTION",
            flag: Some("mongo-collection"),
            tier_key: None,
            kind: Kind::Text,
            value_name: "NAME",
            help: "The mongo backend's collection [env: CACHIER_MONGO_COLLECTION] [default: cachier]",
        },
    ],
    check,
    open,
    pooled: |_| true,
};

/// The mongo backend's settings, defaults applied.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    pub url: String,
    pub collection: String,
}

impl MongoConfig {
    /// The settings, checked: a usage error names the value's source.
    pub fn from_section(section: &Section) -> Result<(MongoConfig, url::Parsed), String> {
        let (given, from) = section
            .text("mongo_url")
            .unwrap_or((url::DEFAULT_URL, "--mongo-url"));
        let parsed = url::parse(given).map_err(|e| format!("{from}: {e}"))?;
        let (coll, from) = section
            .text("mongo_collection")
            .unwrap_or((url::DEFAULT_COLLECTION, "--mongo-collection"));
        url::check_collection(coll).map_err(|e| format!("{from}: {e}"))?;
        let config = MongoConfig {
            url: given.to_string(),
            collection: coll.to_string(),
        };
        Ok((config, parsed))
    }
}

fn check(section: &Section, _: &Common) -> Result<(), String> {
    MongoConfig::from_section(section).map(drop)
}

#[cfg(feature = "mongo")]
fn open(section: &Section, ctx: &Common) -> Box<dyn Store> {
    match MongoConfig::from_section(section) {
        Ok((config, parsed)) => Box::new(store::MongoStore::open(
            &config.url,
            parsed,
            &config.collection,
            ctx.stale_after,
            ctx.compression,
        )),
        Err(why) => super::unavailable::misconfigured("the mongo backend", why),
    }
}

#[cfg(not(feature = "mongo"))]
fn open(_: &Section, _: &Common) -> Box<dyn Store> {
    super::unavailable::unbuilt("MongoDB", "mongo")
}

#[cfg(feature = "mongo")]
fn bin(bytes: &[u8]) -> mongodb::bson::Bson {
    mongodb::bson::Bson::Binary(mongodb::bson::Binary {
        subtype: mongodb::bson::spec::BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// 64 bits no other process or call gets: generation ids, owner tokens.
#[cfg(feature = "mongo")]
use super::kit::random_u64;
