//! Ignore-aware, parallel directory walks for `--input`, with the `ignore`
//! crate (ripgrep's and fd's walker).
//!
//! What is skipped: `.git/`, and what the tree's own `.gitignore`,
//! `.git/info/exclude` (inside a git checkout, as git) and `.ignore` files
//! exclude, including those of parent directories, as `rg` and `fd` do.
//! Never the per-user global git excludes: every machine of a fleet must
//! walk the same files. Hidden files count (`.env` is an input like any
//! other). With `--no-ignore`, everything is walked. Symlinks are followed;
//! a loop, an unreadable directory, a broken link or a FIFO, socket or
//! device is an error naming the path.
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};

use super::hashcache::Stamp;
use super::hashing::Found;

/// The part of a walk a glob keeps: paths relative to the walk's root.
#[derive(Default)]
pub struct Select {
    /// Matched paths: a file is taken, a directory is taken whole.
    pub matched: HashSet<PathBuf>,
    /// Directories on the way to a match.
    pub between: HashSet<PathBuf>,
}

impl Select {
    pub fn new(matches: impl IntoIterator<Item = PathBuf>) -> Select {
        let mut select = Select::default();
        for rel in matches {
            for dir in rel.ancestors().skip(1) {
                select.between.insert(dir.to_path_buf());
            }
            select.matched.insert(rel);
        }
        select
    }

    /// Whether `rel` lies in a match (is one, or is under a matched directory).
    fn taken(&self, rel: &Path) -> bool {
        rel.ancestors().any(|a| self.matched.contains(a))
    }

    fn wanted(&self, rel: &Path) -> bool {
        self.between.contains(rel) || self.taken(rel)
    }
}

/// Paths a walk leaves out whatever else selects them (the `--output`s):
/// called with each path as the walk found it (`root` joined with the rest).
pub type Skip = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// A walk of `root` that skips what the key's walks skip (see above): the
/// one place those rules are set, for the key's walks and the daemon's
/// watch of the same tree.
pub fn builder(root: &Path, no_ignore: bool) -> WalkBuilder {
    let mut builder = WalkBuilder::new(root);
    builder
        .hidden(false)
        .parents(!no_ignore)
        .ignore(!no_ignore)
        .git_ignore(!no_ignore)
        .git_exclude(!no_ignore)
        .git_global(false)
        .require_git(true);
    builder
}

/// What a walk found.
pub struct Walked {
    /// Every regular file, sorted by path bytes.
    pub found: Vec<Found>,
    /// No symlink on the way and no file with a second link: a watch on
    /// the tree's directories sees every change to what was found.
    pub watchable: bool,
}

/// Every regular file under `root` (after following links), sorted by path
/// bytes, less what `skip` leaves out.
/// The error is a sentence naming the path at fault.
pub fn files(
    root: &Path,
    no_ignore: bool,
    select: Option<Select>,
    skip: Option<Skip>,
) -> Result<Walked, String> {
    walk(root, no_ignore, select, skip, None)
}

/// The same for the files directly in `dir` (a directory of a walk from
/// higher up: the ignore files above it count, as they would there).
pub fn files_in(dir: &Path, no_ignore: bool, skip: Option<Skip>) -> Result<Walked, String> {
    walk(dir, no_ignore, None, skip, Some(1))
}

fn walk(
    root: &Path,
    no_ignore: bool,
    select: Option<Select>,
    skip: Option<Skip>,
    depth: Option<usize>,
) -> Result<Walked, String> {
    let mut builder = builder(root, no_ignore);
    builder.max_depth(depth).follow_links(true);
    let select = select.map(Arc::new);
    if !no_ignore || select.is_some() || skip.is_some() {
        let root = root.to_path_buf();
        let select = select.clone();
        builder.filter_entry(move |e: &DirEntry| {
            if e.depth() == 0 {
                return true;
            }
            if skip.as_ref().is_some_and(|skip| skip(e.path())) {
                return false;
            }
            if !no_ignore && e.file_name() == ".git" {
                return false;
            }
            if let Some(s) = &select
                && let Ok(rel) = e.path().strip_prefix(&root)
            {
                return s.wanted(rel);
            }
            true
        });
    }
    let shared = Mutex::new(Collected::default());
    builder.build_parallel().visit(&mut Builder {
        root,
        select: select.as_deref(),
        shared: &shared,
    });
    let collected = shared.into_inner().unwrap_or_default();
    if let Some(why) = collected.failed {
        return Err(why);
    }
    let mut found = collected.found;
    // By bytes: as deterministic as by components, and much cheaper.
    found.sort_unstable_by(|a, b| bytes(&a.path).cmp(bytes(&b.path)));
    Ok(Walked {
        found,
        watchable: !collected.unwatchable,
    })
}

fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

#[derive(Default)]
struct Collected {
    found: Vec<Found>,
    failed: Option<String>,
    /// A symlink or a file with more than one link was met.
    unwatchable: bool,
}

struct Builder<'a> {
    root: &'a Path,
    select: Option<&'a Select>,
    shared: &'a Mutex<Collected>,
}

impl<'s> ParallelVisitorBuilder<'s> for Builder<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor {
            root: self.root,
            select: self.select,
            shared: self.shared,
            mine: Collected::default(),
            dir: None,
        })
    }
}

/// One walker thread's findings, handed over when the thread is done.
struct Visitor<'a> {
    root: &'a Path,
    select: Option<&'a Select>,
    shared: &'a Mutex<Collected>,
    mine: Collected,
    /// The directory of the last file seen, open for `statat`.
    dir: Option<(PathBuf, rustix::fd::OwnedFd)>,
}

impl ParallelVisitor for Visitor<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        match self.take(entry) {
            Ok(()) => WalkState::Continue,
            Err(why) => {
                self.mine.failed.get_or_insert(why);
                WalkState::Quit
            }
        }
    }
}

impl Visitor<'_> {
    fn take(&mut self, entry: Result<DirEntry, ignore::Error>) -> Result<(), String> {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return fatal(&e).map_or(Ok(()), Err),
        };
        let Some(kind) = entry.file_type() else {
            return Ok(());
        };
        if entry.path_is_symlink() && entry.depth() > 0 {
            self.mine.unwatchable = true;
        }
        if kind.is_dir() {
            return Ok(());
        }
        let path = entry.path();
        if let (Some(select), Ok(rel)) = (self.select, path.strip_prefix(self.root))
            && !select.taken(rel)
        {
            return Ok(());
        }
        if !kind.is_file() {
            return Err(format!("`{}` is {}", path.display(), odd_kind(&kind)));
        }
        let stamp = self.stamp(&entry)?;
        // The walker's own path, not a copy: one allocation fewer per file.
        self.mine.found.push(Found {
            path: entry.into_path(),
            stamp,
        });
        Ok(())
    }

    /// The file's stamp, by a `stat` relative to its directory (kept open
    /// while that directory's files come by): a full path lookup per file
    /// was most of the cost of a walk over an unchanged tree. The path is
    /// split at its last `/` as bytes: `Path::parent`, `file_name` and `==`
    /// parse components, a visible share of the CPU at 100,000 files.
    fn stamp(&mut self, entry: &DirEntry) -> Result<Stamp, String> {
        use rustix::fs::{AtFlags, Mode, OFlags};
        let path = bytes(entry.path());
        if let Some(cut) = path.iter().rposition(|&b| b == b'/')
            && cut + 1 < path.len()
        {
            let (parent, name) = (&path[..cut.max(1)], &path[cut + 1..]);
            if self.dir.as_ref().is_none_or(|(p, _)| bytes(p) != parent) {
                let parent = Path::new(std::ffi::OsStr::from_bytes(parent));
                // (O_PATH: a handle for *at calls only; Linux has it.)
                #[cfg(any(target_os = "linux", target_os = "android"))]
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                #[cfg(not(any(target_os = "linux", target_os = "android")))]
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                self.dir = rustix::fs::open(parent, flags, Mode::empty())
                    .ok()
                    .map(|fd| (parent.to_path_buf(), fd));
            }
            if let Some((_, fd)) = &self.dir
                && let Ok(st) =
                    rustix::fs::statat(fd, std::ffi::OsStr::from_bytes(name), AtFlags::empty())
            {
                self.mine.unwatchable |= st.st_nlink > 1;
                return Ok(Stamp::of_stat(&st));
            }
        }
        let meta = entry
            .metadata()
            .map_err(|e| fatal(&e).unwrap_or_else(|| e.to_string()))?;
        self.mine.unwatchable |= std::os::unix::fs::MetadataExt::nlink(&meta) > 1;
        Ok(Stamp::of(&meta))
    }
}

impl Drop for Visitor<'_> {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.found.append(&mut self.mine.found);
            shared.unwatchable |= self.mine.unwatchable;
            if let Some(why) = self.mine.failed.take() {
                shared.failed.get_or_insert(why);
            }
        }
    }
}

/// The sentence for a walk error that must stop the key (an I/O error or a
/// symlink loop); `None` for a bad line in an ignore file, which the walker
/// skips as `rg` does.
fn fatal(err: &ignore::Error) -> Option<String> {
    use ignore::Error as E;
    match err {
        E::Loop { ancestor, child } => Some(format!(
            "symlink loop: `{}` leads back to `{}`",
            child.display(),
            ancestor.display()
        )),
        E::WithPath { path, err } => match fatal(err) {
            Some(why) if !why.starts_with('`') && !why.starts_with("symlink loop:") => {
                Some(format!("`{}`: {why}", path.display()))
            }
            other => other,
        },
        E::WithDepth { err, .. } | E::WithLineNumber { err, .. } => fatal(err),
        E::Partial(errs) => errs.iter().find_map(fatal),
        E::Io(io) => Some(io_text(io)),
        _ => None,
    }
}

/// An I/O error as a sentence, naming a symlink loop as such.
pub fn io_text(err: &std::io::Error) -> String {
    if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        "symlink loop (too many levels of symbolic links)".to_string()
    } else {
        err.to_string()
    }
}

/// What a path that is neither file nor directory is, for messages.
pub fn odd_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO (reading it would block)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "neither a file nor a directory"
    }
}
