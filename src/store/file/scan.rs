//! Scanning the `file` store: every entry's metadata, shard by shard in
//! key order. Shards are listed by worker threads (each entry a stat, and
//! its metadata from the shard's listing index or its file, see shard.rs),
//! a few shards ahead of the visitor at most; the visitor sees them in
//! order on the calling thread.
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::shard;
use crate::store::journal;
use crate::store::{Listed, Visit};

/// At most this many worker threads list shards.
const MAX_WORKERS: usize = 4;

/// How far the workers are, and whether to stop.
struct Window {
    claimed: usize,
    visited: usize,
    stop: bool,
}

/// Visit every entry under `dir` (of `namespace`, if given), in key order.
/// A corrupt or vanished entry is skipped: a run that hits it discards it.
pub fn scan(dir: &Path, namespace: Option<&str>, visit: &mut Visit) -> Result<()> {
    let mut hits: HashMap<String, HashMap<[u8; 8], u64>> = HashMap::new();
    for (ns, path) in journal::all(&dir.join("stats"))? {
        if namespace.is_none_or(|n| n == ns) {
            let folded = journal::fold(&path)?;
            if !folded.hits.is_empty() {
                hits.insert(ns, folded.hits);
            }
        }
    }
    let root = dir.join("entries");
    let index_dir = dir.join("index");
    let shards = sorted_names(&root)?;
    let began = SystemTime::now();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS);
    // Shards listed but not yet visited, at most: what a scan holds in
    // memory grows with it (a million entries: ~2 MiB a shard).
    let ahead = workers + 1;
    let window = Mutex::new(Window {
        claimed: 0,
        visited: 0,
        stop: false,
    });
    let moved = Condvar::new();
    let lock = || window.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Vec<Listed>>)>();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (shards, root, index_dir, moved, lock) =
                (&shards, &root, &index_dir, &moved, &lock);
            s.spawn(move || {
                let mut scratch = shard::Scratch::default();
                loop {
                    let i = {
                        let mut w = lock();
                        while !w.stop && w.claimed >= w.visited + ahead {
                            w = moved.wait(w).unwrap_or_else(|e| e.into_inner());
                        }
                        if w.stop || w.claimed >= shards.len() {
                            return;
                        }
                        w.claimed += 1;
                        w.claimed - 1
                    };
                    let listed =
                        shard::list(root, index_dir, &shards[i], namespace, began, &mut scratch);
                    if tx.send((i, listed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut visit_all = || -> Result<()> {
            let mut pending = BTreeMap::new();
            let mut next = 0;
            while next < shards.len() {
                let (i, listed) = rx
                    .recv()
                    .map_err(|_| anyhow::anyhow!("the scan of the cache stopped short"))?;
                pending.insert(i, listed);
                while let Some(listed) = pending.remove(&next) {
                    for entry in listed? {
                        visit(with_hits(entry, &hits))?;
                    }
                    next += 1;
                    lock().visited = next;
                    moved.notify_all();
                }
            }
            Ok(())
        };
        let result = visit_all();
        lock().stop = true;
        moved.notify_all();
        result
    })
}

/// The entry with its hits from the journals; its last use is its last
/// hit's access time, or its creation if it never hit.
fn with_hits(mut listed: Listed, hits: &HashMap<String, HashMap<[u8; 8], u64>>) -> Listed {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&listed.meta.key.0[..8]);
    listed.hits = hits
        .get(&listed.meta.namespace)
        .and_then(|h| h.get(&prefix))
        .copied()
        .unwrap_or(0);
    let created = listed.meta.created();
    let used = Some(listed.last_used).filter(|_| listed.hits > 0);
    listed.last_used = used.unwrap_or(created).max(created);
    listed
}

/// The names in `dir`, sorted; none if it does not exist.
pub(super) fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            Ok(names)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}
