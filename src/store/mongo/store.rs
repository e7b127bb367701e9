//! [`MongoStore`]: the Store trait over the collections `conn.rs` opens.
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};

use super::body::{MongoBody, MongoSpool, generation};
use super::conn::{Inner, Shared};
use super::url::Parsed;
use super::{bin, claim};
use crate::entry::{Corrupt, Event, Meta};
use crate::key::Key;
use crate::store::{Claim, Counters, Found, Holder, Listed, Spool, Store};

/// Chunks older than this that no entry points at are debris of an
/// interrupted write, for `sweep`.
const DEBRIS_AGE: Duration = Duration::from_secs(3600);

/// The connection, and how bodies are sent.
pub struct MongoStore(Shared, crate::entry::Encoding);

impl MongoStore {
    /// Keep the URL; no I/O happens until the store is used.
    pub fn open(
        url: &str,
        parsed: Parsed,
        coll: &str,
        stale_after: Option<Duration>,
        compression: crate::entry::Encoding,
    ) -> MongoStore {
        MongoStore(
            Rc::new(Inner::new(url, parsed, coll, stale_after)),
            compression,
        )
    }
}

/// A numeric field as the server stored it (int32, int64 or double).
fn num(doc: &Document, field: &str) -> u64 {
    match doc.get(field) {
        Some(Bson::Int32(n)) => (*n).max(0) as u64,
        Some(Bson::Int64(n)) => (*n).max(0) as u64,
        Some(Bson::Double(n)) if *n > 0.0 => *n as u64,
        _ => 0,
    }
}

/// An integer as the server stored it.
fn int(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        _ => None,
    }
}

/// The entry's metadata from its document; `created` is the document's.
fn decode(key: &Key, doc: &Document) -> Result<Meta> {
    let bytes = doc.get_binary_generic("meta").map_err(|_| Corrupt {
        key: key.short(),
        why: "no metadata".into(),
    })?;
    let mut meta = Meta::decode(bytes, key)?;
    meta.created_ms = num(doc, "created");
    Ok(meta)
}

/// Every document `filter` matches in `coll`.
async fn all(
    coll: mongodb::Collection<Document>,
    filter: Document,
    projection: Document,
) -> mongodb::error::Result<Vec<Document>> {
    let mut cursor = coll.find(filter).projection(projection).await?;
    let mut out = Vec::new();
    while cursor.advance().await? {
        out.push(cursor.deserialize_current()?);
    }
    Ok(out)
}

impl Store for MongoStore {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        let filter = doc! { "_id": bin(&key.0) };
        let found = self.0.with(|c| async move {
            c.entries
                .find_one(filter)
                .projection(doc! { "meta": 1, "created": 1, "gen": 1, "body": 1 })
                .await
        })?;
        let Some(mut doc) = found else {
            return Ok(None);
        };
        let meta = decode(key, &doc)?;
        let gen_id = generation(&doc).ok_or_else(|| Corrupt {
            key: key.short(),
            why: "no generation".into(),
        })?;
        let want = meta.body_len();
        let encoding = meta.encoding;
        let inline = match doc.remove("body") {
            None => None,
            Some(Bson::Binary(b)) => Some(b.bytes),
            Some(_) => {
                return Err(Corrupt {
                    key: key.short(),
                    why: "a body that is not binary".into(),
                }
                .into());
            }
        };
        Ok(Some(Found {
            meta,
            body: Box::new(MongoBody {
                store: self.0.clone(),
                key: *key,
                gen_id,
                want,
                encoding,
                inline,
            }),
            stale_after: None,
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        Ok(Box::new(MongoSpool::new(self.0.clone(), *key, self.1)?))
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        let me = &Holder::me();
        claim::claim(&self.0, key, me)
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        claim::wait(&self.0, key, timeout)
    }

    fn remove(&self, key: &Key, _namespace: &str) -> Result<u64> {
        let filter = doc! { "_id": bin(&key.0) };
        let gone = self.0.with(|c| async move {
            c.entries
                .find_one_and_delete(filter)
                .projection(doc! { "size": 1, "gen": 1 })
                .await
        })?;
        let Some(gone) = gone else { return Ok(0) };
        if let Some(gen_id) = generation(&gone) {
            let filter = doc! { "key": bin(&key.0), "gen": gen_id };
            self.0
                .with(|c| async move { c.chunks.delete_many(filter).await })?;
        }
        Ok(num(&gone, "size"))
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        let filter = namespace.map_or_else(Document::new, |ns| doc! { "ns": ns });
        let projection = doc! { "meta": 1, "created": 1, "last_used": 1, "hits": 1, "size": 1 };
        let docs = self
            .0
            .with(|c| async move { all(c.entries, filter, projection).await })?;
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs {
            let Some(Ok(key)) = doc
                .get_binary_generic("_id")
                .ok()
                .map(|b| <[u8; 32]>::try_from(&b[..]))
            else {
                continue;
            };
            // A corrupt entry is skipped here; a run that hits it discards it.
            let Ok(meta) = decode(&Key(key), &doc) else {
                continue;
            };
            let hits = num(&doc, "hits");
            let used = if hits > 0 { num(&doc, "last_used") } else { 0 };
            out.push(Listed {
                last_used: SystemTime::UNIX_EPOCH
                    + Duration::from_millis(used.max(meta.created_ms)),
                meta,
                size: num(&doc, "size"),
                hits,
            });
        }
        Ok(out)
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        self.record_sum(namespace, key, event.deltas())
    }

    fn record_sum(&self, namespace: &str, key: &Key, n: [i64; 5]) -> Result<()> {
        // n: hits, misses, waits, stale serves, saved ms.
        if n[0] > 0 {
            let (key, used) = (
                bin(&key.0),
                doc! { "$inc": { "hits": n[0] }, "$set": { "last_used": (crate::entry::now_ms() as i64) } },
            );
            self.0
                .with(|c| async move { c.entries.update_one(doc! { "_id": key }, used).await })?;
        }
        // One `$inc`: concurrent callers add, nobody reads then writes.
        let add = doc! { "$inc": {
            "hits": n[0], "misses": n[1], "waits": n[2],
            "stale_serves": n[3], "saved_ms": n[4],
        } };
        self.0.upsert(|c| {
            let (ns, add) = (namespace.to_string(), add.clone());
            async move {
                c.counters
                    .update_one(doc! { "_id": ns }, add)
                    .upsert(true)
                    .await
            }
        })?;
        Ok(())
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        let (counted, sizes) = self.0.with(|c| async move {
            let counted = all(c.counters, Document::new(), Document::new()).await?;
            let group = doc! { "$group": {
                "_id": "$ns", "entries": { "$sum": 1 }, "bytes": { "$sum": "$size" },
            } };
            let mut cursor = c.entries.aggregate([group]).await?;
            let mut sizes = Vec::new();
            while cursor.advance().await? {
                sizes.push(cursor.deserialize_current()?);
            }
            Ok((counted, sizes))
        })?;
        let mut out: BTreeMap<String, Counters> = BTreeMap::new();
        for doc in counted {
            let Ok(ns) = doc.get_str("_id") else { continue };
            let counters = out.entry(ns.to_string()).or_default();
            counters.hits = num(&doc, "hits");
            counters.misses = num(&doc, "misses");
            counters.waits = num(&doc, "waits");
            counters.stale_serves = num(&doc, "stale_serves");
            counters.saved_ms = num(&doc, "saved_ms");
        }
        for doc in sizes {
            let Ok(ns) = doc.get_str("_id") else { continue };
            let counters = out.entry(ns.to_string()).or_default();
            counters.entries = num(&doc, "entries");
            counters.bytes = num(&doc, "bytes");
        }
        Ok(out)
    }

    fn reset_counters(&self) -> Result<()> {
        self.0.with(|c| async move {
            let zero = doc! { "$set": {
                "hits": 0i64, "misses": 0i64, "waits": 0i64, "stale_serves": 0i64, "saved_ms": 0i64,
            } };
            c.counters.update_many(Document::new(), zero).await?;
            c.entries
                .update_many(
                    doc! { "hits": { "$ne": 0 } },
                    doc! { "$set": { "hits": 0i64 } },
                )
                .await?;
            Ok(())
        })
    }

    fn clear_claims(&self) -> Result<u64> {
        claim::clear(&self.0)
    }

    fn location(&self) -> String {
        format!("{} (collection {})", self.0.place(), self.0.collection())
    }

    /// Chunks no entry points at, left by writes interrupted over an hour ago.
    fn sweep(&self) -> Result<()> {
        let cutoff = SystemTime::now() - DEBRIS_AGE;
        let secs = cutoff
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as u32;
        let mut oid = [0u8; 12];
        oid[..4].copy_from_slice(&secs.to_be_bytes());
        let old = doc! { "_id": { "$lt": ObjectId::from_bytes(oid) } };
        self.0.with(|c| async move {
            let gens = c.chunks.distinct("gen", old).await?;
            if gens.is_empty() {
                return Ok(());
            }
            let live: HashSet<i64> = c
                .entries
                .distinct("gen", doc! { "gen": { "$in": gens.clone() } })
                .await?
                .iter()
                .filter_map(int)
                .collect();
            let dead: Vec<i64> = gens
                .iter()
                .filter_map(int)
                .filter(|g| !live.contains(g))
                .collect();
            if !dead.is_empty() {
                c.chunks
                    .delete_many(doc! { "gen": { "$in": dead } })
                    .await?;
            }
            Ok(())
        })
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let now = crate::entry::now_ms() as i64;
        let cutoff = now.saturating_sub(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX));
        let filter = doc! { "_id": what, "at": { "$lte": cutoff } };
        // One conditional upsert: of racing callers exactly one gets through,
        // the others hit the unique `_id`.
        let got = self.0.try_insert(|c| async move {
            c.marks
                .update_one(filter, doc! { "$set": { "at": now } })
                .upsert(true)
                .await
        })?;
        Ok(got.is_some())
    }
}
