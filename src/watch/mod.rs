//! Tree watches: the per-user daemon watches an `--input` tree with inotify
//! so that a key over a tree nothing touched reads no directory at all.
//!
//! The client asks the daemon to watch the tree *before* it walks it
//! ([`client::Watch::unchanged`]): the daemon puts a watch on every directory the
//! walk would enter (each before reading it, so none created meanwhile is
//! missed) and answers with the tree's generation, which any change after
//! that bumps. The client then walks and hashes as usual, and hands the
//! component it found back with that generation ([`client::Watch::remember`]);
//! the daemon keeps it only if nothing changed since. The next key asks
//! first and gets the component back while the generation stands, after
//! checking itself the ignore files that lie outside the tree.
//!
//! What no directory watch can see is never remembered: a walk that met a
//! symlink (its target may lie elsewhere) or a file with more than one link
//! (it may be written through the other name). Trees on filesystems whose
//! changes may come from another machine (NFS, SMB, FUSE, ...) are not
//! watched. What stays unseen, as for git's fsmonitor and watchman: a
//! shared writable `mmap` written to, and a hard link made from outside the
//! tree to one of its files and written through afterwards. `CACHIER_WATCH=0`
//! (config `watch = false`) turns watching off.
// (Elsewhere there is no daemon: the client side always walks.)
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[cfg(target_os = "linux")]
mod build;
pub mod client;
#[cfg(target_os = "linux")]
pub mod serve;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// What a watch covers: a directory as a walk sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tree {
    /// The real path of the walk's root.
    pub root: ByteBuf,
    pub no_ignore: bool,
    /// `--output`s as written, left out of the watch as they are of the
    /// walk, and the working directory they are relative to.
    pub outputs: Vec<ByteBuf>,
    pub cwd: ByteBuf,
}

/// The hash of what lies outside a tree's watch yet decides what its walk
/// takes: the ignore files and `.git` of every directory from the root up
/// (the root's own `.git/info/exclude` included, as `.git/` is never
/// watched; a linked worktree's is its main checkout's), each by its stamp
/// or its absence. Nothing with `no_ignore`.
pub fn outside(root: &Path, no_ignore: bool) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    if no_ignore {
        return *h.finalize().as_bytes();
    }
    let mut buf = Vec::with_capacity(64);
    for dir in root.ancestors() {
        for name in [".gitignore", ".ignore", ".git/info/exclude"] {
            stamp(&mut h, &mut buf, &dir.join(name));
        }
        // A `.git` file is a linked worktree's: its excludes are elsewhere.
        let git = stamp(&mut h, &mut buf, &dir.join(".git"));
        if git.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
            && let Some(common) = worktree_common(dir)
        {
            stamp(&mut h, &mut buf, &common.join("info/exclude"));
        }
    }
    *h.finalize().as_bytes()
}

/// Add `path`'s name and its stamp (or why it has none) to `h`; its stat.
fn stamp(h: &mut blake3::Hasher, buf: &mut Vec<u8>, path: &Path) -> Option<rustix::fs::Stat> {
    h.update(&(path.as_os_str().len() as u64).to_le_bytes());
    h.update(path.as_os_str().as_bytes());
    buf.clear();
    let got = rustix::fs::stat(path);
    match &got {
        Ok(st) => {
            buf.push(1);
            crate::stamp::Stamp::of_stat(st).encode(buf);
            #[allow(clippy::useless_conversion)] // (u16 on macOS)
            buf.extend_from_slice(&u32::from(st.st_mode).to_le_bytes());
        }
        Err(e) => {
            buf.push(0);
            buf.extend_from_slice(&e.raw_os_error().to_le_bytes());
        }
    }
    h.update(buf);
    got.ok()
}

/// A linked worktree's common git dir (`dir/.git` is a file naming its own
/// git dir, whose `commondir` names the main one), as git resolves it.
fn worktree_common(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join(".git")).ok()?;
    let own = dir.join(text.strip_prefix("gitdir:")?.trim());
    let common = match std::fs::read_to_string(own.join("commondir")) {
        Ok(rel) => own.join(rel.trim()),
        Err(_) => own,
    };
    Some(common)
}
