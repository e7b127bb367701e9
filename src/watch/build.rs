//! Putting a tree under watch: a fresh inotify instance, and a watch on
//! every directory the key's walk would enter, each added before that
//! directory is read, so one made meanwhile is either read or reported.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::{DirEntry, WalkState};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;

use super::serve::Watched;

/// What a directory's watch reports: anything that changes what a walk
/// finds or what a file holds.
fn flags() -> WatchFlags {
    WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::DONT_FOLLOW
        | WatchFlags::EXCL_UNLINK
}

/// Watch `w`'s tree afresh (its old watches dropped), using at most what
/// the user's watch limit leaves after `others` (half of it is ours to
/// take). The error says why it cannot be watched.
pub(super) fn build(w: &mut Watched, others: usize) -> Result<(), String> {
    w.fd = None;
    w.dirs.clear();
    w.generation += 1;
    w.stale = true;
    // Nothing before this generation is known.
    w.log.clear();
    w.floor = w.generation;
    let root = PathBuf::from(OsStr::from_bytes(&w.tree.root));
    local(&root)?;
    let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)
        .map_err(|e| format!("cannot watch: {e}"))?;
    let limit = (max_user_watches() / 2).saturating_sub(others);
    let root_wd = inotify::add_watch(&fd, &root, flags()).map_err(|e| refused(&root, e))?;
    let fd = Arc::new(fd);
    let found = Arc::new(Mutex::new(Found {
        dirs: HashMap::from([(root_wd, (root.clone(), true))]),
        failed: None,
    }));
    let no_ignore = w.tree.no_ignore;
    // The key's own walk rules; links are not followed (a walk that meets
    // one is never remembered).
    let mut builder = crate::key::walk_builder(&root, no_ignore);
    builder.follow_links(false);
    let skip = w.skip.clone();
    let (fd_ref, found_ref) = (fd.clone(), found.clone());
    builder.filter_entry(move |e: &DirEntry| {
        if e.depth() == 0 {
            return true;
        }
        if !e.file_type().is_some_and(|t| t.is_dir())
            || skip.as_ref().is_some_and(|skip| skip(e.path()))
        {
            return false;
        }
        if !no_ignore && e.file_name() == ".git" {
            // Not walked, but a nested checkout's excludes decide what is.
            let info = e.path().join("info");
            if let Ok(wd) = inotify::add_watch(&*fd_ref, &info, flags())
                && let Ok(mut found) = found_ref.lock()
            {
                found.dirs.insert(wd, (info, false));
            }
            return false;
        }
        let added = local(e.path()).and_then(|()| {
            inotify::add_watch(&*fd_ref, e.path(), flags()).map_err(|err| refused(e.path(), err))
        });
        let Ok(mut found) = found_ref.lock() else {
            return false;
        };
        match added {
            Ok(wd) if found.dirs.len() < limit => {
                found.dirs.insert(wd, (e.path().to_path_buf(), true));
                true
            }
            Ok(_) => {
                found.failed.get_or_insert_with(|| too_many(limit));
                false
            }
            Err(why) => {
                found.failed.get_or_insert(why);
                false
            }
        }
    });
    builder
        .build_parallel()
        .run(|| Box::new(|_| WalkState::Continue));
    drop(builder);
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = found.failed.take() {
        return Err(why);
    }
    w.dirs = std::mem::take(&mut found.dirs);
    w.root_wd = root_wd;
    w.fd = Some(fd);
    w.stale = false;
    Ok(())
}

struct Found {
    dirs: HashMap<i32, (PathBuf, bool)>,
    failed: Option<String>,
}

fn refused(dir: &Path, err: Errno) -> String {
    if err == Errno::NOSPC {
        too_many(max_user_watches())
    } else {
        format!("cannot watch `{}`: {err}", dir.display())
    }
}

fn too_many(limit: usize) -> String {
    format!(
        "the tree has more directories than the {limit} watches cachier takes \
         (half of fs.inotify.max_user_watches); raise that sysctl to watch it"
    )
}

/// The user's inotify watch limit.
fn max_user_watches() -> usize {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

/// Whether every change to `dir` happens on this machine, where inotify
/// sees it: only filesystems known to be local are watched (not NFS, SMB,
/// FUSE, 9p, ...: another machine may write there).
fn local(dir: &Path) -> Result<(), String> {
    const LOCAL: &[i64] = &[
        0xEF53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x858458f6,  // ramfs
        0x794c_7630, // overlayfs
        0x2fc1_2fc1, // zfs
        0xF2F5_2010, // f2fs
        0xca45_1a4e, // bcachefs
        0x3153_464a, // jfs
        0x5265_4973, // reiserfs
        0x3434,      // nilfs
        0x4d44,      // vfat
        0x2011_BAB0, // exfat
        0x7366_746e, // ntfs3
    ];
    let st =
        rustix::fs::statfs(dir).map_err(|e| format!("cannot watch `{}`: {e}", dir.display()))?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let kind = i64::from(st.f_type) as i64 & 0xffff_ffff;
    if LOCAL.contains(&kind) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is on a filesystem (type {kind:#x}) that another machine may change unseen",
            dir.display()
        ))
    }
}
