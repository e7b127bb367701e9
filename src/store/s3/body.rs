//! An entry's object: written at commit from the local spool, encoded as
//! configured (zstd unless `compression = "none"`), in one PUT when small,
//! else by a multipart upload of [`PART`]-sized parts that becomes visible
//! only when completed (aborted on failure); read by ranged GETs, each
//! pinned to the object's ETag, decoded into a local file.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use anyhow::{Context, Result, anyhow};
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, PutObject, UploadPart,
};

use super::conn::{Conn, sign};
use super::layout::head;
use super::read::{ranged, read_into};
use super::store::Shared;
use crate::entry::{Body, Corrupt, Encoding, Meta, Stream};
use crate::key::Key;
use crate::store::compress::{Sink, sink_error};
use crate::store::{Fetch, Spool, Staged};

/// One part of an upload, and the largest object sent in one PUT: S3's
/// smallest part. Each is staged in a temp file, then sent from it (so a
/// throttled request can be sent again) in constant memory.
pub const PART: usize = 5 << 20;
/// S3's most parts per upload: bigger bodies get bigger parts.
const MAX_PARTS: u64 = 10_000;
/// One ranged GET of a body.
const RANGE: u64 = 8 << 20;

/// Output spooled to local temp files; uploaded at commit.
pub struct S3Spool {
    store: Shared,
    key: Key,
    staged: Staged,
}

impl S3Spool {
    pub fn new(store: Shared, key: Key) -> Result<S3Spool> {
        let encoding = store.lazy.config().compression;
        Ok(S3Spool {
            store,
            key,
            staged: Staged::new(encoding)?,
        })
    }
}

/// The most bytes `raw` body bytes take stored as `encoding` (zstd's
/// worst case is a little over the input: a frame of raw blocks).
fn stored_bound(raw: u64, encoding: Encoding) -> u64 {
    match encoding {
        Encoding::Raw => raw,
        Encoding::Zstd => raw.saturating_add(raw / 128).saturating_add(128 << 10),
    }
}

impl Spool for S3Spool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.staged.write(stream, data)
    }

    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let fail = || format!("cannot store cache entry {}", meta.key.short());
        let meta = &self.staged.stored_meta(meta);
        let head = head(meta).with_context(fail)?;
        // The stored size is known once encoded: its bound sizes the parts.
        let bound =
            (head.len() as u64).saturating_add(stored_bound(meta.body_len(), meta.encoding));
        let size = usize::try_from((PART as u64).max(bound.div_ceil(MAX_PARTS)))
            .context("the output is too big to upload")
            .with_context(fail)?;
        let names = self.store.names.clone();
        let object = names.entry(&self.key);
        let index = names.index(&meta.namespace, &self.key);
        let body = self.staged.body().with_context(fail)?;
        let mut all = io::Cursor::new(head).chain(body);
        let mut part = tempfile::tempfile()
            .context("cannot create a temp file for the upload")
            .with_context(fail)?;
        let first = stage(&mut all, &mut part, size).with_context(fail)?;
        self.store
            .lazy
            .with(|c| {
                // The index first: an index without its entry is skipped
                // (and swept); an entry without an index would be unlisted.
                put(c, &index, &[])?;
                if first < size as u64 {
                    put_file(c, &object, &part)
                } else {
                    multipart(c, &object, &mut part, size, &mut all)
                }
            })
            .with_context(fail)
    }
}

/// PUT `name` unconditionally.
pub fn put(c: &Conn, name: &str, body: &[u8]) -> Result<String> {
    let url = sign(PutObject::new(&c.bucket, Some(&c.creds), name), &[]);
    let mut reply = c.send("PUT", &url, &[], body)?;
    if !reply.ok() {
        return Err(c.refused("store an object", &mut reply));
    }
    Ok(reply.etag.unwrap_or_default())
}

/// Stage the next `size` bytes of `body` (or what is left) in `part`,
/// replacing what it held; how many.
fn stage(body: &mut impl Read, part: &mut File, size: usize) -> io::Result<u64> {
    part.set_len(0)?;
    part.seek(SeekFrom::Start(0))?;
    io::copy(&mut body.take(size as u64), part)
}

/// PUT `name` from the whole of `file`, unconditionally.
fn put_file(c: &Conn, name: &str, file: &File) -> Result<()> {
    let url = sign(PutObject::new(&c.bucket, Some(&c.creds), name), &[]);
    let mut reply = c.put_file(&url, file, false)?;
    if !reply.ok() {
        return Err(c.refused("store an object", &mut reply));
    }
    Ok(())
}

/// Upload `part` (full: the first part) then the rest of `body` to `name`
/// in parts of `size` bytes; visible once complete.
fn multipart(
    c: &Conn,
    name: &str,
    part: &mut File,
    size: usize,
    body: &mut impl Read,
) -> Result<()> {
    let url = sign(
        CreateMultipartUpload::new(&c.bucket, Some(&c.creds), name),
        &[],
    );
    let mut reply = c.send("POST", &url, &[], &[])?;
    if !reply.ok() {
        return Err(c.refused("start an upload", &mut reply));
    }
    let text = reply.text(1 << 16)?;
    let id = CreateMultipartUpload::parse_response(&text)
        .map_err(|_| anyhow!("S3 at {} gave an unreadable upload id", c.place))?
        .upload_id()
        .to_string();
    let uploaded = parts(c, name, &id, part, size, body);
    let done = uploaded.and_then(|etags| {
        let action = CompleteMultipartUpload::new(
            &c.bucket,
            Some(&c.creds),
            name,
            &id,
            etags.iter().map(String::as_str),
        );
        let url = sign(action.clone(), &[]);
        let xml = action.body();
        let mut reply = c.send_slow("POST", &url, xml.as_bytes())?;
        // S3 may report a failed completion in a 200 reply's body.
        let text = reply.text(1 << 16)?;
        if !reply.ok() || text.contains("<Error>") {
            return Err(anyhow!(
                "S3 at {} refused to complete the upload: HTTP {}",
                c.place,
                reply.status
            ));
        }
        Ok(())
    });
    if done.is_err() {
        let url = sign(
            AbortMultipartUpload::new(&c.bucket, Some(&c.creds), name, &id),
            &[],
        );
        let _ = c.send("DELETE", &url, &[], &[]);
    }
    done
}

/// Send `part` (staged, full) and the rest of `body` as parts of `size`
/// bytes; their ETags in order.
fn parts(
    c: &Conn,
    name: &str,
    id: &str,
    part: &mut File,
    size: usize,
    body: &mut impl Read,
) -> Result<Vec<String>> {
    let mut etags = Vec::new();
    loop {
        if etags.len() as u64 >= MAX_PARTS {
            return Err(anyhow!("the output needs more than {MAX_PARTS} parts"));
        }
        let number = u16::try_from(etags.len() + 1).map_err(|_| anyhow!("too many parts"))?;
        let url = sign(
            UploadPart::new(&c.bucket, Some(&c.creds), name, number, id),
            &[],
        );
        let mut reply = c.put_file(&url, part, true)?;
        if !reply.ok() {
            return Err(c.refused("store a part", &mut reply));
        }
        etags.push(reply.etag.take().unwrap_or_default());
        if stage(body, part, size)? == 0 {
            return Ok(etags);
        }
    }
}

/// An entry's body: the bytes the first GET brought, and where the rest is.
pub struct S3Body {
    pub store: Shared,
    pub key: Key,
    pub etag: Option<String>,
    /// Where the body starts in the object.
    pub start: u64,
    /// The body's bytes as stored (the object's size less its head).
    pub stored: u64,
    /// Its bytes once decoded, as the metadata promises.
    pub want: u64,
    pub encoding: Encoding,
    /// The body's first stored bytes, read with the head.
    pub first: Vec<u8>,
}

impl Fetch for S3Body {
    fn fetch(self: Box<Self>) -> Result<Body> {
        let temp = "cannot create a temp file for the output";
        let file = crate::store::kit::scratch(self.want, tempfile::tempfile)?;
        let mut sink =
            Sink::new(file.try_clone().context(temp)?, self.encoding, self.want).context(temp)?;
        let first = &self.first[..self.first.len().min(self.stored as usize)];
        io::Write::write_all(&mut sink, first).map_err(|e| sink_error(e, &self.key))?;
        let mut got = first.len() as u64;
        let name = self.store.names.entry(&self.key);
        while got < self.stored {
            let from = self.start + got;
            let to = from + RANGE.min(self.stored - got);
            let n = self.store.lazy.with(|c| {
                match ranged(c, &self.key, &name, from, to, self.etag.as_ref())? {
                    Some(mut reply) => read_into(&self.key, &mut reply, to - from, &mut sink),
                    None => Ok(0),
                }
            })?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let raw = sink.finish().map_err(|e| sink_error(e, &self.key))?;
        if got != self.stored || raw != self.want {
            return Err(Corrupt {
                key: self.key.short(),
                why: "length mismatch".to_string(),
            }
            .into());
        }
        Ok(Body { file, start: 0 })
    }
}
