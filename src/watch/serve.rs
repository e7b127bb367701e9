//! The daemon's side of tree watches: one inotify instance per watched
//! tree, its generation, and what clients asked it to remember.
//!
//! Events are read when a request about the tree comes (the kernel queues
//! them the moment a change is made, so a change a client made before
//! asking is always seen); a queue that overflowed meanwhile is a change
//! like any other. A change to what decides the set of watched directories
//! (a directory made, removed, moved in or out, an ignore file or `.git`
//! touched) also marks the tree stale: the next request watches it afresh,
//! and until then nothing is remembered for it. Other changes are logged
//! by directory, so a client whose walk was remembered a few changes ago
//! re-reads only the directories they were in.
use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::fs::inotify::{self, ReadFlags};
use rustix::io::Errno;
use serde_bytes::ByteBuf;

use super::Tree;
use super::build;
use crate::store::memory::daemon::proto::Resp;

/// At most this many trees (an inotify instance each; a user has 128), the
/// least recently asked about dropped first.
const MAX_TREES: usize = 32;
/// At most this many remembered components per tree, and this large each.
const MAX_RECORDS: usize = 64;
const MAX_RECORD: usize = 4096;
/// A tree that could not be watched is not tried again for this long.
const RETRY: Duration = Duration::from_secs(60);
/// The changed directories logged per tree: past them, a full walk.
const MAX_LOG: usize = 256;

#[derive(Default)]
pub struct Watches {
    trees: Mutex<Vec<Watched>>,
}

/// One watched tree.
pub(super) struct Watched {
    pub tree: Tree,
    /// The inotify instance: dropping it drops every watch.
    pub fd: Option<Arc<OwnedFd>>,
    /// Each watch's directory, and whether the walk reads it (a nested
    /// checkout's `.git/info` is watched, not walked).
    pub dirs: HashMap<i32, (PathBuf, bool)>,
    pub root_wd: i32,
    /// Moves on with every change.
    pub generation: u64,
    /// The watched set may miss a directory: watch afresh before trusting.
    pub stale: bool,
    /// What the outputs cover (events there change nothing).
    pub skip: Option<crate::key::Skip>,
    records: HashMap<String, Remembered>,
    /// The directories changes were in, each with the generation it moved
    /// the tree to; every change after generation `floor` is here.
    pub log: VecDeque<(u64, PathBuf)>,
    pub floor: u64,
    /// The last try to watch it failed, when and why.
    refused: Option<(Instant, String)>,
    used: u64,
}

/// What a client found of a tree at `generation`, with what it saw outside.
struct Remembered {
    generation: u64,
    outside: ByteBuf,
    record: ByteBuf,
}

impl Watches {
    fn lock(&self) -> MutexGuard<'_, Vec<Watched>> {
        self.trees.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer a `Watch` request.
    pub fn watch(&self, tree: Tree, name: &str, outside: &[u8]) -> Resp {
        let mut trees = self.lock();
        let clock = trees.iter().map(|w| w.used).max().unwrap_or(0) + 1;
        let at = match trees.iter().position(|w| w.tree == tree) {
            Some(at) => at,
            None => {
                if trees.len() >= MAX_TREES
                    && let Some(old) = (0..trees.len()).min_by_key(|&i| trees[i].used)
                {
                    trees.swap_remove(old);
                }
                trees.push(Watched::new(tree));
                trees.len() - 1
            }
        };
        let others: usize = trees
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != at)
            .map(|(_, w)| w.dirs.len())
            .sum();
        let w = &mut trees[at];
        w.used = clock;
        if let Some((when, why)) = &w.refused
            && when.elapsed() < RETRY
        {
            return Resp::Unwatchable { why: why.clone() };
        }
        w.drain();
        if w.stale || w.fd.is_none() {
            let built = build::build(w, others);
            // What changed while the watches went on, and is now watched.
            w.drain();
            w.refused = built.err().map(|why| (Instant::now(), why));
            if let Some((_, why)) = &w.refused {
                return Resp::Unwatchable { why: why.clone() };
            }
        }
        let generation = w.generation;
        match w.records.get(name) {
            Some(r) if w.stale || *r.outside != *outside => Resp::Watching { generation },
            Some(r) if r.generation == generation => Resp::Unchanged {
                record: r.record.clone(),
            },
            Some(r) if w.floor <= r.generation => {
                let mut dirs: Vec<ByteBuf> = Vec::new();
                for (_, dir) in w.log.iter().filter(|(g, _)| *g > r.generation) {
                    let dir = ByteBuf::from(dir.as_os_str().as_bytes().to_vec());
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
                Resp::Changed {
                    record: r.record.clone(),
                    dirs,
                    generation,
                }
            }
            _ => Resp::Watching { generation },
        }
    }

    /// Keep `record` if nothing in `tree` changed since `generation`.
    pub fn remember(
        &self,
        tree: &Tree,
        name: String,
        outside: ByteBuf,
        generation: u64,
        record: ByteBuf,
    ) {
        if record.len() + outside.len() + name.len() > MAX_RECORD {
            return;
        }
        let mut trees = self.lock();
        let Some(w) = trees.iter_mut().find(|w| w.tree == *tree) else {
            return;
        };
        w.drain();
        if w.generation != generation || w.stale || w.fd.is_none() {
            return;
        }
        if w.records.len() >= MAX_RECORDS && !w.records.contains_key(&name) {
            w.records.clear();
        }
        let remembered = Remembered {
            generation,
            outside,
            record,
        };
        w.records.insert(name, remembered);
    }

    /// Trees watched, and directories over all of them.
    pub fn counts(&self) -> (u64, u64) {
        let trees = self.lock();
        let dirs = trees.iter().map(|w| w.dirs.len() as u64).sum();
        (trees.len() as u64, dirs)
    }
}

impl Watched {
    fn new(tree: Tree) -> Watched {
        let skip = (!tree.outputs.is_empty())
            .then(|| {
                let specs: Vec<_> = tree
                    .outputs
                    .iter()
                    .map(|o| OsStr::from_bytes(o).to_os_string())
                    .collect();
                let cwd = PathBuf::from(OsStr::from_bytes(&tree.cwd));
                crate::outputs::Declared::parse(&specs)
                    .ok()
                    .map(|d| d.walk_filter_in(cwd))
            })
            .flatten();
        Watched {
            tree,
            fd: None,
            dirs: HashMap::new(),
            root_wd: -1,
            // Not 0: a generation from an earlier daemon's watch of the
            // same tree is never taken for one of this watch.
            generation: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            stale: true,
            skip,
            records: HashMap::new(),
            log: VecDeque::new(),
            floor: 0,
            refused: None,
            used: 0,
        }
    }

    /// Read every queued event: each moves the generation on, and the
    /// directory it was in is logged.
    fn drain(&mut self) {
        let Some(fd) = self.fd.clone() else { return };
        let mut buf = [MaybeUninit::<u8>::uninit(); 16 << 10];
        let mut reader = inotify::Reader::new(&*fd, &mut buf);
        let mut changed = false;
        let mut stale = false;
        let mut touched: Vec<PathBuf> = Vec::new();
        loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(_) => {
                    stale = true;
                    break;
                }
            };
            let mask = ev.events();
            let wd = ev.wd();
            if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                (changed, stale) = (true, true);
                continue;
            }
            if mask.contains(ReadFlags::IGNORED) {
                // A watch gone (its directory removed): the parent saw that.
                self.dirs.remove(&wd);
                stale |= wd == self.root_wd;
                continue;
            }
            if mask.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::UNMOUNT) {
                // (Its parent saw it too, unless the parent is not watched.)
                (changed, stale) = (true, true);
                continue;
            }
            let Some((dir, walked)) = self.dirs.get(&wd) else {
                (changed, stale) = (true, true);
                continue;
            };
            let Some(name) = ev.file_name() else {
                // The directory itself (its mode, say).
                changed = true;
                touched.push(dir.clone());
                continue;
            };
            let name = name.to_bytes();
            let path = dir.join(OsStr::from_bytes(name));
            if self.skip.as_ref().is_some_and(|skip| skip(&path)) {
                continue;
            }
            changed = true;
            stale |= !*walked
                || mask.contains(ReadFlags::ISDIR)
                || matches!(name, b".gitignore" | b".ignore" | b".git" | b"exclude");
            touched.push(dir.clone());
        }
        self.stale |= stale;
        touched.sort_unstable();
        touched.dedup();
        if changed || stale {
            self.generation += 1;
            for dir in touched {
                self.log.push_back((self.generation, dir));
            }
            while self.log.len() > MAX_LOG {
                if let Some((generation, _)) = self.log.pop_front() {
                    self.floor = generation;
                }
            }
        }
    }
}
