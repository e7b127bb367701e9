//! An entry's body in MongoDB: chunk documents of at most 1 MiB under a
//! fresh generation id, published by upserting the entry document that
//! points at them, and read back chunk by chunk into a local file, so no
//! document nears the 16 MB limit and memory stays constant; a body of at
//! most 64 KiB instead rides in the entry document.
use std::io::{self, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Document, doc};
use mongodb::options::ReturnDocument;

use super::conn::{OP_TIMEOUT, Shared};
use super::failure::Failure;
use super::{bin, random_u64};
use crate::entry::{Body, Corrupt, Meta, Stream};
use crate::key::Key;
use crate::store::compress::{Sink, sink_error};
use crate::store::{Fetch, Spool, Staged, read_full};

use crate::store::kit::CHUNK;
/// Chunks sent in one insert, or received in one reply: what bounds memory.
const BATCH: usize = 2;
/// A stored body this small goes in the entry document (`body`), not in
/// chunks.
pub const INLINE: usize = 64 * 1024;
/// With `--stale-after S`, the server drops an entry S + max(S, 1 day)
/// after it was made: well past staleness, so only abandoned entries go.
const TTL_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// When an entry made at `created_ms` expires, if entries go stale.
pub fn expires_at(created_ms: u64, stale_after: Option<Duration>) -> Option<DateTime> {
    let s = stale_after?;
    let at = created_ms as u128 + s.saturating_add(s.max(TTL_MARGIN)).as_millis();
    Some(DateTime::from_millis(at.min(i64::MAX as u128) as i64))
}

/// Output spooled to local temp files; sent to the server at commit.
pub struct MongoSpool {
    store: Shared,
    key: Key,
    staged: Staged,
}

impl MongoSpool {
    pub fn new(store: Shared, key: Key, encoding: crate::entry::Encoding) -> Result<MongoSpool> {
        Ok(MongoSpool {
            store,
            key,
            staged: Staged::new(encoding)?,
        })
    }

    /// The whole stored body, if at most [`INLINE`] bytes.
    fn small_body(&mut self) -> Result<Option<Vec<u8>>> {
        let mut body = self.staged.body()?;
        let mut buf = vec![0u8; INLINE + 1];
        let n = read_full(&mut body, &mut buf)?;
        if n > INLINE {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Write every chunk of the body under `gen_id`.
    fn send_chunks(&mut self, gen_id: i64, expires: Option<DateTime>) -> Result<()> {
        let mut body = self.staged.body()?;
        let mut seq = 0i32;
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            while batch.len() < BATCH {
                let mut buf = vec![0u8; CHUNK];
                let n = read_full(&mut body, &mut buf)?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                let mut chunk = doc! {
                    "key": bin(&self.key.0),
                    "gen": gen_id,
                    "seq": seq,
                    "data": Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: buf }),
                };
                if let Some(at) = expires {
                    chunk.insert("expires_at", at);
                }
                batch.push(chunk);
                seq += 1;
            }
            if batch.is_empty() {
                return Ok(());
            }
            let full = batch.len() == BATCH;
            self.store
                .with(|c| async move { c.chunks.insert_many(batch).await })?;
            if !full {
                return Ok(());
            }
        }
    }
}

impl Spool for MongoSpool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.staged.write(stream, data)
    }

    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let fail = || format!("cannot store cache entry {}", meta.key.short());
        let meta = &self.staged.stored_meta(meta);
        let mut meta_bytes = Vec::new();
        ciborium::into_writer(meta, &mut meta_bytes).with_context(fail)?;
        let size = (meta.body_len() + meta_bytes.len() as u64) as i64;
        let store = self.store.clone();
        store.ensure_indexes().with_context(fail)?;
        let gen_id = (random_u64() >> 1) as i64;
        let expires = expires_at(meta.created_ms, store.stale_after);
        // A small body rides in the entry document itself: a hit is one
        // `find`, and there are no chunks to write or delete.
        let inline = self.small_body().with_context(fail)?;
        if inline.is_none()
            && let Err(e) = self.send_chunks(gen_id, expires)
        {
            // Best effort: sweep and the TTL collect what is left.
            let key = bin(&self.key.0);
            let _ = store.with(|c| async move {
                c.chunks
                    .delete_many(doc! { "key": key, "gen": gen_id })
                    .await
            });
            return Err(e).with_context(fail);
        }
        let created = meta.created_ms as i64;
        let mut entry = doc! {
            "_id": bin(&self.key.0),
            "ns": &meta.namespace,
            "meta": bin(&meta_bytes),
            "size": size,
            "created": created,
            "last_used": created,
            "hits": 0i64,
            "gen": gen_id,
        };
        if let Some(at) = expires {
            entry.insert("expires_at", at);
        }
        if let Some(bytes) = inline {
            entry.insert(
                "body",
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Generic,
                    bytes,
                }),
            );
        }
        // Publishing is this one replace: a reader sees the old entry or
        // the new one, each with all its chunks.
        let old = store
            .upsert(|c| {
                let (key, entry) = (bin(&self.key.0), entry.clone());
                async move {
                    c.entries
                        .find_one_and_replace(doc! { "_id": key }, entry)
                        .upsert(true)
                        .return_document(ReturnDocument::Before)
                        .projection(doc! { "gen": 1 })
                        .await
                }
            })
            .with_context(fail)?;
        // The replaced generation goes; a newer one a concurrent writer is
        // still sending is left alone.
        if let Some(old_gen) = old.as_ref().and_then(generation)
            && old_gen != gen_id
        {
            let key = bin(&self.key.0);
            let _ = store.with(|c| async move {
                c.chunks
                    .delete_many(doc! { "key": key, "gen": old_gen })
                    .await
            });
        }
        Ok(())
    }
}

/// An entry's body, fetched only when the entry will be served.
pub struct MongoBody {
    pub store: Shared,
    pub key: Key,
    pub gen_id: i64,
    /// Bytes the metadata promises (stdout plus stderr).
    pub want: u64,
    /// How the chunks hold them.
    pub encoding: crate::entry::Encoding,
    /// The stored body, when the entry document held it.
    pub inline: Option<Vec<u8>>,
}

/// How reading the chunks went.
enum Pulled {
    Done(u64),
    /// A chunk out of sequence, or malformed.
    Gap,
    Disk(io::Error),
    /// No batch of chunks came within the operation timeout.
    Stalled,
}

impl Fetch for MongoBody {
    fn fetch(self: Box<Self>) -> Result<Body> {
        let file = crate::store::kit::scratch(self.want, tempfile::tempfile)?;
        let mut out = Sink::new(file.try_clone()?, self.encoding, self.want)?;
        let (key, gen_id) = (bin(&self.key.0), self.gen_id);
        let got = if let Some(bytes) = &self.inline {
            match out.write_all(bytes).and_then(|()| out.finish()) {
                Ok(n) => Pulled::Done(n),
                Err(e) => Pulled::Disk(e),
            }
        } else if self.want == 0 {
            Pulled::Done(0)
        } else {
            // A big body may take long in all: each batch gets the
            // operation timeout, the whole read one more second per MiB.
            let limit = OP_TIMEOUT + Duration::from_secs(self.want >> 20);
            self.store.with_limit(limit, |c| async move {
                let mut cursor = c
                    .chunks
                    .find(doc! { "key": key, "gen": gen_id })
                    .sort(doc! { "seq": 1 })
                    .batch_size(BATCH as u32)
                    .await?;
                let mut next = 0i32;
                loop {
                    match tokio::time::timeout(OP_TIMEOUT, cursor.advance()).await {
                        Ok(more) => {
                            if !more? {
                                break;
                            }
                        }
                        Err(_) => return Ok(Pulled::Stalled),
                    }
                    let raw = cursor.current();
                    let (Ok(seq), Ok(data)) = (raw.get_i32("seq"), raw.get_binary("data")) else {
                        return Ok(Pulled::Gap);
                    };
                    if seq != next {
                        return Ok(Pulled::Gap);
                    }
                    if let Err(e) = out.write_all(data.bytes) {
                        return Ok(Pulled::Disk(e));
                    }
                    next += 1;
                }
                Ok(match out.finish() {
                    Ok(n) => Pulled::Done(n),
                    Err(e) => Pulled::Disk(e),
                })
            })?
        };
        let why = match got {
            Pulled::Done(n) if n == self.want => return Ok(Body { file, start: 0 }),
            Pulled::Done(_) => "length mismatch",
            Pulled::Gap => "a chunk is missing",
            Pulled::Disk(e) => return Err(sink_error(e, &self.key)),
            Pulled::Stalled => {
                return Err(self.store.failed(Failure::Unreachable(format!(
                    "no chunk within {} s",
                    OP_TIMEOUT.as_secs()
                ))));
            }
        };
        // A writer that replaced the entry meanwhile deleted these chunks:
        // that is no damage, and the new entry must stay.
        let key = bin(&self.key.0);
        let current: Option<Document> = self.store.with(|c| async move {
            c.entries
                .find_one(doc! { "_id": key, "gen": gen_id })
                .projection(doc! { "_id": 1 })
                .await
        })?;
        if current.is_none() {
            return Err(anyhow!(
                "cache entry {} was replaced while it was read",
                self.key.short()
            ));
        }
        Err(Corrupt {
            key: self.key.short(),
            why: why.to_string(),
        }
        .into())
    }
}

/// The generation an entry document points at.
pub fn generation(entry: &Document) -> Option<i64> {
    match entry.get("gen") {
        Some(Bson::Int64(g)) => Some(*g),
        Some(Bson::Int32(g)) => Some(i64::from(*g)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_well_past_staleness() {
        assert_eq!(expires_at(1000, None), None);
        let hour = Duration::from_secs(3600);
        let at = expires_at(1000, Some(hour)).unwrap();
        assert_eq!(at.timestamp_millis(), 1000 + (25 * 3600 * 1000));
        let month = Duration::from_secs(30 * 24 * 3600);
        let at = expires_at(0, Some(month)).unwrap();
        assert_eq!(at.timestamp_millis() as u128, 2 * month.as_millis());
    }
}
