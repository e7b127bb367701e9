//! Reading entry objects: ranged GETs pinned to an ETag, and the first
//! read of an entry, which brings its head and, for a small entry, its
//! whole body in one request.
use std::io::Read;

use anyhow::{Result, anyhow};
use rusty_s3::actions::GetObject;

use super::conn::{Conn, Header, Reply, redact, sign};
use super::layout;
use super::store::Inner;
use crate::entry::Meta;
use crate::key::Key;

/// What the first GET of an entry reads.
const FIRST: u64 = 64 << 10;
/// What [`read_into`] moves at a time.
const CHUNK: usize = 64 << 10;

/// An entry's head as read: its metadata, where the body starts, and what
/// of the body came with it.
pub struct Head {
    pub meta: Meta,
    /// The object's size.
    pub size: u64,
    pub etag: Option<String>,
    pub start: u64,
    pub first: Vec<u8>,
}

/// GET bytes `from..to` of entry `key`, only while its ETag is `etag`:
/// the reply, or `None` past its end or when there is no such object.
pub fn ranged(
    c: &Conn,
    key: &Key,
    name: &str,
    from: u64,
    to: u64,
    etag: Option<&String>,
) -> Result<Option<Reply>> {
    let mut headers: Vec<Header> = vec![("range", format!("bytes={from}-{}", to - 1))];
    if let Some(e) = etag {
        headers.push(("if-match", e.clone()));
    }
    let url = sign(GetObject::new(&c.bucket, Some(&c.creds), name), &headers);
    let mut reply = c.send("GET", &url, &headers, &[])?;
    match reply.status {
        200 | 206 => Ok(Some(reply)),
        404 | 416 => Ok(None),
        412 => Err(anyhow!(
            "cache entry {} was replaced while it was read; try again",
            key.short()
        )),
        _ => Err(c.refused("read an entry", &mut reply)),
    }
}

/// Append what `reply` holds, at most `limit` bytes, to `out`; how many
/// came. A failed write is `out`'s (see `compress::sink_error`): a body
/// that does not decode is corrupt, not a failed read.
pub fn read_into(
    key: &Key,
    reply: &mut Reply,
    limit: u64,
    out: &mut impl std::io::Write,
) -> Result<u64> {
    let mut from = reply.body.as_reader().take(limit);
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let k = match from.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(anyhow!(
                    "cannot read cache entry {} from S3: {}",
                    key.short(),
                    redact(&e.to_string())
                ));
            }
        };
        out.write_all(&buf[..k])
            .map_err(|e| crate::store::compress::sink_error(e, key))?;
        n += k as u64;
    }
}

/// The head of entry `key`, or `None` if there is none.
pub fn head(store: &Inner, key: &Key) -> Result<Option<Head>> {
    let name = store.names.entry(key);
    let mut buf = Vec::new();
    let first = store.lazy.with(|c| {
        let Some(mut reply) = ranged(c, key, &name, 0, FIRST, None)? else {
            return Ok(None);
        };
        read_into(key, &mut reply, FIRST, &mut buf)?;
        // A server that ignored the range answered 200 with the whole object.
        let whole = (reply.status == 200).then_some(reply.length).flatten();
        Ok(Some((
            reply.etag.take(),
            reply.total.or(whole).unwrap_or(buf.len() as u64),
        )))
    })?;
    let Some((etag, size)) = first else {
        return Ok(None);
    };
    let start = layout::head_len(key, &buf)?;
    let have = buf.len() as u64;
    if start as u64 > have && have < size {
        store.lazy.with(|c| {
            if let Some(mut rest) = ranged(c, key, &name, have, start as u64, etag.as_ref())? {
                read_into(key, &mut rest, start as u64 - have, &mut buf)?;
            }
            Ok(())
        })?;
    }
    let start = start.min(buf.len());
    let meta = layout::decode(key, &buf[..start])?;
    let first = buf.split_off(start);
    Ok(Some(Head {
        meta,
        size,
        etag,
        start: start as u64,
        first,
    }))
}
