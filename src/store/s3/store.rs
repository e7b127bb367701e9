//! [`S3Store`]: the Store calls over the objects `layout.rs` names.
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow};
use rusty_s3::S3Action;
use rusty_s3::actions::{AbortMultipartUpload, DeleteObject, HeadObject, ListObjectsV2, PutObject};

use super::S3Config;
use super::body::{S3Body, S3Spool};
use super::conn::{Conn, Header, Lazy, sign, tag};
use super::layout::Names;
use super::{claim, counts, read, watch};
use crate::entry::Event;
use crate::key::Key;
use crate::store::{Claim, Counters, Found, Holder, Listed, Spool, Store};

/// Multipart uploads older than this were left by killed writers (billed
/// until aborted): `gc` aborts them.
const DEBRIS_AGE: Duration = Duration::from_secs(3600);

pub type Shared = Rc<Inner>;

pub struct Inner {
    pub lazy: Lazy,
    pub names: Names,
    /// Whether the store honours conditional writes, once known.
    pub conditional: Cell<Option<bool>>,
    /// The ETag of each entry as this process last read it (`None`: there
    /// was none): a waiter wakes when the entry's differs.
    pub seen: RefCell<HashMap<Key, Option<String>>>,
}

pub struct S3Store(Shared);

pub fn open(config: S3Config) -> Box<dyn Store> {
    let names = Names {
        prefix: config.prefix.clone(),
    };
    Box::new(S3Store(Rc::new(Inner {
        lazy: Lazy::new(config),
        names,
        conditional: Cell::new(None),
        seen: RefCell::new(HashMap::new()),
    })))
}

/// Every object under `prefix`: name and size.
pub fn list(store: &Inner, prefix: &str) -> Result<Vec<(String, u64)>> {
    Ok(list_dated(store, prefix)?
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect())
}

/// [`list`], with each object's last modification (RFC 3339) and the
/// server's time.
fn list_dated(store: &Inner, prefix: &str) -> Result<Vec<(String, u64, String)>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store.lazy.with(|c| {
            let mut action = ListObjectsV2::new(&c.bucket, Some(&c.creds));
            action.query_mut().remove("encoding-type");
            action.with_prefix(prefix.to_string());
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = sign(action, &[]);
            let mut reply = c.send("GET", &url, &[], &[])?;
            if !reply.ok() {
                return Err(c.refused("list objects", &mut reply));
            }
            let text = reply.text(64 << 20)?;
            ListObjectsV2::parse_response(&text)
                .map_err(|_| anyhow!("S3 at {} gave an unreadable listing", c.place))
        })?;
        for o in page.contents {
            out.push((
                o.key,
                o.size.unwrap_or(0),
                o.last_modified.unwrap_or_default(),
            ));
        }
        match page.next_continuation_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

pub fn delete(c: &Conn, name: &str) -> Result<()> {
    let url = sign(DeleteObject::new(&c.bucket, Some(&c.creds), name), &[]);
    let mut reply = c.send("DELETE", &url, &[], &[])?;
    if !reply.ok() && reply.status != 404 {
        return Err(c.refused("delete an object", &mut reply));
    }
    Ok(())
}

impl Store for S3Store {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        let head = read::head(&self.0, key);
        let mut seen = self.0.seen.borrow_mut();
        match &head {
            Ok(h) => seen.insert(*key, h.as_ref().map(|h| h.etag.clone().unwrap_or_default())),
            Err(_) => seen.remove(key),
        };
        drop(seen);
        let Some(read::Head {
            meta,
            size,
            etag,
            start,
            first,
        }) = head?
        else {
            return Ok(None);
        };
        let want = meta.body_len();
        let encoding = meta.encoding;
        Ok(Some(Found {
            meta,
            body: Box::new(S3Body {
                store: self.0.clone(),
                key: *key,
                etag,
                start,
                stored: size.saturating_sub(start),
                want,
                encoding,
                first,
            }),
            stale_after: None,
        }))
    }

    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        Ok(Box::new(S3Spool::new(self.0.clone(), *key)?))
    }

    fn claim(&self, key: &Key) -> Result<Claim> {
        claim::claim(&self.0, key, &Holder::me())
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        watch::wait(&self.0, key, timeout)
    }

    fn remove(&self, key: &Key, namespace: &str) -> Result<u64> {
        let name = self.0.names.entry(key);
        let index = self.0.names.index(namespace, key);
        self.0.lazy.with(|c| {
            let url = sign(HeadObject::new(&c.bucket, Some(&c.creds), &name), &[]);
            let mut reply = c.send("HEAD", &url, &[], &[])?;
            let size = match reply.status {
                200 => reply.length.unwrap_or(0),
                404 => 0,
                _ => return Err(c.refused("read an entry", &mut reply)),
            };
            delete(c, &name)?;
            delete(c, &index)?;
            Ok(size)
        })
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        let totals = counts::fold(&self.0, false)?;
        let mut out = Vec::new();
        for (name, _) in list(&self.0, &self.0.names.indexes(namespace))? {
            let Some((_, key)) = self.0.names.index_of(&name) else {
                continue;
            };
            // A corrupt entry is skipped here; a run that hits it discards it.
            let Ok(Some(read::Head { meta, size, .. })) = read::head(&self.0, &key) else {
                continue;
            };
            let (hits, used) = totals.of(&key);
            out.push(Listed {
                last_used: SystemTime::UNIX_EPOCH
                    + Duration::from_millis(used.max(meta.created_ms)),
                meta,
                size,
                hits,
            });
        }
        Ok(out)
    }

    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        counts::record(&self.0, namespace, key, &[event])
    }

    /// One delta object for them all: a waited hit is one PUT, not two.
    fn record_all(&self, namespace: &str, key: &Key, events: &[Event]) -> Result<()> {
        counts::record(&self.0, namespace, key, events)
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        let totals = counts::fold(&self.0, false)?;
        let mut out: BTreeMap<String, Counters> = BTreeMap::new();
        for (ns, n) in totals.ns {
            let c = out.entry(ns).or_default();
            [c.hits, c.misses, c.waits, c.stale_serves, c.saved_ms] = n;
        }
        let sizes: HashMap<Key, u64> = list(&self.0, &self.0.names.entries())?
            .into_iter()
            .filter_map(|(name, size)| Some((self.0.names.key_of(&name)?, size)))
            .collect();
        for (name, _) in list(&self.0, &self.0.names.indexes(None))? {
            let Some((ns, key)) = self.0.names.index_of(&name) else {
                continue;
            };
            let Some(size) = sizes.get(&key) else {
                continue;
            };
            let c = out.entry(ns).or_default();
            c.entries += 1;
            c.bytes += size;
        }
        out.retain(|_, c| *c != Counters::default());
        Ok(out)
    }

    fn reset_counters(&self) -> Result<()> {
        counts::fold(&self.0, true).map(drop)
    }

    fn clear_claims(&self) -> Result<u64> {
        // This machine's wait files are not claims: not counted.
        let _ = watch::clear(&self.0);
        claim::clear(&self.0)
    }

    fn location(&self) -> String {
        self.0.lazy.config().place()
    }

    /// Abort multipart uploads and drop index objects that killed writers
    /// left over an hour ago; fold the counters.
    fn sweep(&self) -> Result<()> {
        let cutoff =
            jiff::Timestamp::now() - jiff::SignedDuration::from_secs(DEBRIS_AGE.as_secs() as i64);
        let old = |at: &str| at.parse::<jiff::Timestamp>().is_ok_and(|t| t < cutoff);
        let prefix = self.0.names.prefix.clone();
        self.0.lazy.with(|c| {
            let mut action = ListObjectsV2::new(&c.bucket, Some(&c.creds));
            let q = action.query_mut();
            q.remove("list-type");
            q.remove("encoding-type");
            q.insert("uploads", "");
            q.insert("prefix", prefix.clone());
            let url = sign(action, &[]);
            let mut reply = c.send("GET", &url, &[], &[])?;
            if !reply.ok() {
                return Err(c.refused("list uploads", &mut reply));
            }
            let text = reply.text(64 << 20)?;
            for upload in text.split("<Upload>").skip(1) {
                let (Some(key), Some(id), Some(at)) = (
                    tag(upload, "Key"),
                    tag(upload, "UploadId"),
                    tag(upload, "Initiated"),
                ) else {
                    continue;
                };
                if old(&at) {
                    let url = sign(
                        AbortMultipartUpload::new(&c.bucket, Some(&c.creds), &key, &id),
                        &[],
                    );
                    c.send("DELETE", &url, &[], &[])?;
                }
            }
            Ok(())
        })?;
        let entries: std::collections::HashSet<String> = list(&self.0, &self.0.names.entries())?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for (name, _, at) in list_dated(&self.0, &self.0.names.indexes(None))? {
            let Some((_, key)) = self.0.names.index_of(&name) else {
                continue;
            };
            if !entries.contains(&self.0.names.entry(&key)) && old(&at) {
                self.0.lazy.with(|c| delete(c, &name))?;
            }
        }
        counts::fold(&self.0, false).map(drop)
    }

    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        let name = self.0.names.mark(what);
        self.0.lazy.with(|c| {
            let url = sign(HeadObject::new(&c.bucket, Some(&c.creds), &name), &[]);
            let mut reply = c.send("HEAD", &url, &[], &[])?;
            let cond: Header = match reply.status {
                404 => ("if-none-match", "*".into()),
                200 if due(&reply, interval) => ("if-match", reply.etag.take().unwrap_or_default()),
                200 => return Ok(false),
                _ => return Err(c.refused("read a mark", &mut reply)),
            };
            let headers = [cond];
            let url = sign(PutObject::new(&c.bucket, Some(&c.creds), &name), &headers);
            let reply = c.send("PUT", &url, &headers, b"1")?;
            Ok(reply.ok())
        })
    }
}

/// Whether the object in `reply` is at least `interval` old, by the server's clock.
fn due(reply: &super::conn::Reply, interval: Duration) -> bool {
    reply.age().is_none_or(|age| age >= interval)
}
