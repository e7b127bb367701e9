//! Walking the store: SCAN (never KEYS) over every master, with each batch
//! of names read back in one pipeline on the master that holds them.
use std::time::{Duration, SystemTime};

use anyhow::Result;
use redis::{Connection, RedisResult};

use super::store::Inner;
use crate::entry::Meta;
use crate::store::Listed;

/// Call `each` with every batch of key names matching `pattern`, on every
/// master, with the connection to the master that holds them.
pub fn scan(
    store: &Inner,
    pattern: &str,
    mut each: impl FnMut(&mut Connection, Vec<Vec<u8>>) -> RedisResult<()>,
) -> Result<()> {
    let target = store.lazy.target()?;
    for mut conn in target.masters()? {
        let mut cursor: u64 = 0;
        loop {
            let (next, names): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .map_err(|e| target.failed(&e))?;
            if !names.is_empty() {
                each(&mut conn, names).map_err(|e| target.failed(&e))?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}

type Row = (
    Option<Vec<u8>>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
);

/// Every entry (of one namespace), as the management commands see it.
pub fn list(store: &Inner, namespace: Option<&str>) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    scan(store, &store.names.meta_pattern(), |conn, names| {
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.cmd("HMGET")
                .arg(name)
                .arg(&["meta", "created", "used", "hits", "size"]);
        }
        let rows: Vec<Row> = pipe.query(conn)?;
        for (name, (meta, created, used, hits, size)) in names.iter().zip(rows) {
            let (Some(key), Some(meta), Some(created)) =
                (store.names.key_of_meta(name), meta, created)
            else {
                continue;
            };
            // A corrupt entry is skipped here; a run that hits it discards it.
            let Ok(meta) = Meta::decode_at(&meta, &key, created) else {
                continue;
            };
            if namespace.is_some_and(|ns| ns != meta.namespace) {
                continue;
            }
            let hits = hits.unwrap_or(0);
            let used = if hits > 0 { used.unwrap_or(0) } else { 0 }.max(created);
            out.push(Listed {
                meta,
                size: size.unwrap_or(0),
                last_used: SystemTime::UNIX_EPOCH + Duration::from_millis(used),
                hits,
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// Entries and bytes per namespace.
pub fn sizes(store: &Inner) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    scan(store, &store.names.meta_pattern(), |conn, names| {
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.cmd("HMGET").arg(name).arg(&["ns", "size", "meta"]);
        }
        let rows: Vec<(Option<String>, Option<u64>, Option<redis::Value>)> = pipe.query(conn)?;
        for (ns, size, meta) in rows {
            if let (Some(ns), Some(_)) = (ns, meta) {
                out.push((ns, size.unwrap_or(0)));
            }
        }
        Ok(())
    })?;
    Ok(out)
}
