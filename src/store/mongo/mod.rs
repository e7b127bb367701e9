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
use crate::settings::Settings;

/// Whether the settings this backend needs (its URL) are usable.
pub fn check(settings: &Settings) -> Result<(), String> {
    let urls = &settings.urls;
    url::parse(urls.mongo.as_deref().unwrap_or(url::DEFAULT_URL))
        .map_err(|e| format!("--mongo-url: {e}"))?;
    url::check_collection(
        urls.mongo_collection
            .as_deref()
            .unwrap_or(url::DEFAULT_COLLECTION),
    )
}

#[cfg(feature = "mongo")]
pub fn open(settings: &Settings) -> Box<dyn Store> {
    let urls = &settings.urls;
    let given = urls.mongo.as_deref().unwrap_or(url::DEFAULT_URL);
    let coll = urls
        .mongo_collection
        .as_deref()
        .unwrap_or(url::DEFAULT_COLLECTION);
    // `check` refused a bad URL before anything ran.
    let parsed = url::parse(given).unwrap_or_else(|_| url::Parsed {
        place: "MongoDB (unparsable URL)".into(),
        db: url::DEFAULT_DB.into(),
        password: None,
    });
    Box::new(store::MongoStore::open(
        given,
        parsed,
        coll,
        settings.stale_after,
    ))
}

#[cfg(not(feature = "mongo"))]
pub fn open(_settings: &Settings) -> Box<dyn Store> {
    super::unavailable::unbuilt("MongoDB", "mongo")
}

/// `bytes` as a BSON binary value.
#[cfg(feature = "mongo")]
fn bin(bytes: &[u8]) -> mongodb::bson::Bson {
    mongodb::bson::Bson::Binary(mongodb::bson::Binary {
        subtype: mongodb::bson::spec::BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    })
}

/// 64 bits no other process or call gets: generation ids, owner tokens.
#[cfg(feature = "mongo")]
fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&CALLS.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(crate::entry::host().as_bytes());
    let stack = 0u8;
    h.update(&(&stack as *const u8 as usize).to_le_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(out)
}
