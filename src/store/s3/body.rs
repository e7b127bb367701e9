//! An entry's object: written at commit from the local spool, in one PUT
//! when small, else by a multipart upload of [`PART`]-sized parts that
//! becomes visible only when completed (aborted on failure); read by
//! ranged GETs, each pinned to the object's ETag, into a local file.
use std::io::{self, Read, Write};

use anyhow::{Context, Result, anyhow};
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, PutObject, UploadPart,
};

use super::conn::{Conn, sign};
use super::layout::head;
use super::read::{ranged, read_into};
use super::store::Shared;
use crate::entry::{Body, Corrupt, Meta, Stream};
use crate::key::Key;
use crate::store::{Fetch, Spool, Staged, read_full};

/// One part of an upload, and the largest object sent in one PUT: S3's
/// smallest part. Memory holds one part at a time.
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
        Ok(S3Spool {
            store,
            key,
            // (Raw: S3 bodies are not compressed yet.)
            staged: Staged::new(crate::entry::Encoding::Raw)?,
        })
    }
}

impl Spool for S3Spool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.staged.write(stream, data)
    }

    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let fail = || format!("cannot store cache entry {}", meta.key.short());
        let head = head(meta).with_context(fail)?;
        let total = head.len() as u64 + meta.body_len();
        let names = self.store.names.clone();
        let object = names.entry(&self.key);
        let index = names.index(&meta.namespace, &self.key);
        let body = self.staged.body().with_context(fail)?;
        let mut all = io::Cursor::new(head).chain(body);
        self.store
            .lazy
            .with(|c| {
                // The index first: an index without its entry is skipped
                // (and swept); an entry without an index would be unlisted.
                put(c, &index, &[])?;
                if total <= PART as u64 {
                    let mut buf = Vec::with_capacity(total as usize);
                    all.read_to_end(&mut buf)?;
                    put(c, &object, &buf).map(drop)
                } else {
                    multipart(c, &object, &mut all, total)
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

/// Upload `body` (`total` bytes) to `name` in parts; visible once complete.
fn multipart(c: &Conn, name: &str, body: &mut impl Read, total: u64) -> Result<()> {
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
    let uploaded = parts(c, name, &id, body, total);
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

/// Send the parts; their ETags in order.
fn parts(c: &Conn, name: &str, id: &str, body: &mut impl Read, total: u64) -> Result<Vec<String>> {
    let size = (PART as u64).max(total.div_ceil(MAX_PARTS)) as usize;
    let mut buf = vec![0u8; size];
    let mut etags = Vec::new();
    loop {
        let n = read_full(body, &mut buf)?;
        if n == 0 {
            return Ok(etags);
        }
        let number = u16::try_from(etags.len() + 1).map_err(|_| anyhow!("too many parts"))?;
        let url = sign(
            UploadPart::new(&c.bucket, Some(&c.creds), name, number, id),
            &[],
        );
        let mut reply = c.send_slow("PUT", &url, &buf[..n])?;
        if !reply.ok() {
            return Err(c.refused("store a part", &mut reply));
        }
        etags.push(reply.etag.take().unwrap_or_default());
    }
}

/// An entry's body: the bytes the first GET brought, and where the rest is.
pub struct S3Body {
    pub store: Shared,
    pub key: Key,
    pub etag: Option<String>,
    /// Where the body starts in the object.
    pub start: u64,
    pub want: u64,
    /// The body's first bytes, read with the head.
    pub first: Vec<u8>,
}

impl Fetch for S3Body {
    fn fetch(self: Box<Self>) -> Result<Body> {
        let mut file = tempfile::tempfile().context("cannot create a temp file for the output")?;
        let corrupt = |why: &str| Corrupt {
            key: self.key.short(),
            why: why.to_string(),
        };
        let first = &self.first[..self.first.len().min(self.want as usize)];
        file.write_all(first)
            .context("cannot write the cached output to a temp file")?;
        let mut got = first.len() as u64;
        let name = self.store.names.entry(&self.key);
        while got < self.want {
            let from = self.start + got;
            let to = from + RANGE.min(self.want - got);
            let n = self.store.lazy.with(|c| {
                match ranged(c, &self.key, &name, from, to, self.etag.as_ref())? {
                    Some(mut reply) => read_into(&self.key, &mut reply, to - from, &mut file),
                    None => Ok(0),
                }
            })?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got != self.want {
            return Err(corrupt("length mismatch").into());
        }
        Ok(Body { file, start: 0 })
    }
}
