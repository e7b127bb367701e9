//! An entry's body in PostgreSQL: rows of at most 1 MiB, stdout then stderr,
//! written in one transaction and read back row by row into a local file,
//! so memory stays constant whatever the output's size.
use std::io::{self, Write};
use std::pin::pin;

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use tokio_postgres::types::{ToSql, Type};

use super::conn::Shared;
use crate::entry::{Body, Corrupt, Meta, Stream};
use crate::key::Key;
use crate::store::compress::{Sink, sink_error};
use crate::store::{Fetch, Spool, Staged, read_full};

use crate::store::kit::CHUNK;

/// Output spooled to local temp files; sent to the server at commit.
pub struct PgSpool {
    store: Shared,
    key: Key,
    staged: Staged,
}

impl PgSpool {
    pub fn new(store: Shared, key: Key, encoding: crate::entry::Encoding) -> Result<PgSpool> {
        Ok(PgSpool {
            store,
            key,
            staged: Staged::new(encoding)?,
        })
    }
}

impl Spool for PgSpool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.staged.write(stream, data)
    }

    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let fail = || format!("cannot store cache entry {}", meta.key.short());
        let meta = &self.staged.stored_meta(meta);
        let mut meta_bytes = Vec::new();
        ciborium::into_writer(meta, &mut meta_bytes).with_context(fail)?;
        let size = (meta.body_len() + meta_bytes.len() as u64) as i64;
        let key = &self.key.0[..];
        let mut body = self.staged.body().with_context(fail)?;
        let store = self.store.clone();
        store
            .with(|c| {
                let tx = c.d.run(c.client.transaction())?;
                c.d.run(tx.execute("DELETE FROM cachier_chunks WHERE key = $1", &[&key]))?;
                let mut buf = vec![0u8; CHUNK];
                for seq in 0i32.. {
                    let n = read_full(&mut body, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    c.d.run(tx.execute(
                        "INSERT INTO cachier_chunks (key, seq, data) VALUES ($1, $2, $3)",
                        &[&key, &seq, &&buf[..n]],
                    ))?;
                }
                let created = meta.created_ms as i64;
                c.d.run(tx.execute(
                    "INSERT INTO cachier_entries \
                       (key, namespace, meta, created_ms, last_used_ms, hits, size) \
                     VALUES ($1, $2, $3, $4, $4, 0, $5) \
                     ON CONFLICT (key) DO UPDATE SET namespace = excluded.namespace, \
                       meta = excluded.meta, created_ms = excluded.created_ms, \
                       last_used_ms = excluded.last_used_ms, hits = 0, size = excluded.size",
                    &[&key, &meta.namespace, &meta_bytes, &created, &size],
                ))?;
                c.d.run(tx.commit())?;
                Ok(())
            })
            .with_context(fail)
    }
}

/// An entry's body, fetched only when the entry will be served.
pub struct PgBody {
    pub store: Shared,
    pub key: Key,
    /// Bytes the metadata promises (stdout plus stderr).
    pub want: u64,
    /// How the chunks hold them.
    pub encoding: crate::entry::Encoding,
}

impl Fetch for PgBody {
    fn fetch(self: Box<Self>) -> Result<Body> {
        let file = crate::store::kit::scratch(self.want, tempfile::tempfile)?;
        let mut sink = Sink::new(file.try_clone()?, self.encoding, self.want)?;
        let key = &self.key.0[..];
        let got = self.store.with(|c| {
            // Typed: sent with its parameter, one round trip.
            let rows = c.d.run(c.client.query_typed_raw(
                "SELECT seq, data FROM cachier_chunks WHERE key = $1 ORDER BY seq",
                [(&key as &dyn ToSql, Type::BYTEA)],
            ))?;
            let mut rows = pin!(rows);
            let mut next = 0i32;
            // Each row (at most 1 MiB) within one statement's deadline.
            while let Some(row) = c.d.run(rows.try_next())? {
                let (seq, data): (i32, &[u8]) = (row.get(0), row.get(1));
                if seq != next {
                    return Ok(None);
                }
                if let Err(e) = sink.write_all(data) {
                    return Ok(Some(Err(e)));
                }
                next += 1;
            }
            Ok(Some(Ok(())))
        })?;
        let got = match got {
            Some(Ok(())) => Some(sink.finish().map_err(|e| sink_error(e, &self.key))?),
            Some(Err(e)) => return Err(sink_error(e, &self.key)),
            None => None,
        };
        let corrupt = |why: &str| Corrupt {
            key: self.key.short(),
            why: why.to_string(),
        };
        match got {
            None => Err(corrupt("a chunk is missing").into()),
            Some(n) if n != self.want => Err(corrupt("length mismatch").into()),
            Some(_) => Ok(Body { file, start: 0 }),
        }
    }
}
