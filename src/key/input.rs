//! `--input` components: a file, a directory (walked, ignore-aware), or a glob.
//!
//! One component per `--input`, labelled with it as written: the hash of
//! every file's path (relative to the directory, or to the glob's literal
//! part) and content, in sorted order. One per input rather than one per
//! file, so an entry's metadata stays small when a tree holds 100,000 files.
use std::ffi::OsStr;
use std::path::{Component as PathPart, Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;

use super::Component;
use super::hashing::{self, Found, Unreadable};
use super::listing;
use super::walk::{self, Select};
use crate::error::Exit;
use crate::watch::client::Known;

/// How `--input` directories and globs are walked.
pub struct Walking<'a> {
    pub no_ignore: bool,
    /// What the walks leave out (the `--output`s).
    pub skip: Option<walk::Skip>,
    /// The `--output`s as written, for the daemon's watch.
    pub outputs: &'a [std::ffi::OsString],
    /// Ask the daemon's watch before walking (see `crate::watch`).
    pub watch: bool,
}

/// A tree this large is worth the daemon's watch (counted by its hash-cache
/// shard: a first walk of it never asks).
const WATCH_MIN_FILES: usize = 1000;

/// Add the component of one `--input`. A path or glob that names nothing,
/// an unreadable file, a symlink loop or a FIFO is a usage error: the
/// command must not run.
pub fn components(spec: &OsStr, how: &Walking, parts: &mut Vec<Component>) -> Result<()> {
    let text = spec.to_string_lossy();
    let label = format!("input {text}");
    let began = SystemTime::now();
    if text.contains(['*', '?', '[']) {
        let base = literal_base(&text);
        parts.push(walked(&label, &base, &text, &text, how, began)?);
        return Ok(());
    }
    let root = Path::new(spec);
    let meta = std::fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(&text, &e.to_string()),
        _ => bad(&text, &walk::io_text(&e)),
    })?;
    if meta.is_dir() {
        parts.push(walked(&label, root, "", &text, how, began)?);
    } else if meta.is_file() {
        let found = [Found {
            path: root.to_path_buf(),
            stamp: super::hashcache::Stamp::of(&meta),
        }];
        let shard = || shard_name(&real(root), b"", false);
        let hash = hash_all(&found, shard, began, &text)?[0];
        parts.push(super::component(
            &label,
            &("file", serde_bytes::Bytes::new(&hash)),
            format!("content {}", super::short_hash(&hash)),
        ));
    } else {
        return Err(bad(
            &text,
            &format!("`{text}` is {}", walk::odd_kind(&meta.file_type())),
        ));
    }
    Ok(())
}

/// The component of a directory (`pattern` empty) or of a glob's matches
/// under its literal base: from the daemon's watch when nothing changed
/// since it was remembered, else by a walk.
fn walked(
    label: &str,
    root: &Path,
    pattern: &str,
    spec: &str,
    how: &Walking,
    began: SystemTime,
) -> Result<Component> {
    // Only a watch needs the shard's name before the walk (its size says
    // whether the tree is large enough); a walk alone names it (a real path
    // and a hash) only if the hash cache is used.
    let shard_of = || shard_name(&real(root), pattern.as_bytes(), how.no_ignore);
    let mut watched = None;
    if how.watch && cfg!(target_os = "linux") {
        let place = real(root);
        let shard = shard_name(&place, pattern.as_bytes(), how.no_ignore);
        if super::hashcache::records(&shard) >= WATCH_MIN_FILES
            && let Some(watch) =
                crate::watch::client::Watch::open(&place, how.no_ignore, how.outputs, pattern)
        {
            watched = Some((watch, place, shard));
        }
    }
    match watched.as_mut().map_or(Known::Walk, |(w, _, _)| w.check()) {
        Known::Same { count, digest } => {
            return Ok(tree_part(label, count, digest, Some(0)));
        }
        // (A glob's matches are not kept by directory: walked whole.)
        Known::Changed { listing, dirs } if pattern.is_empty() => {
            if let Some((_, place, shard)) = &watched {
                let at = listing::Place {
                    root,
                    place,
                    shard,
                    spec,
                    began,
                };
                if let Some(up) = listing::update(&at, listing, &dirs, how)? {
                    if let Some((watch, _, _)) = watched {
                        watch.remember(up.count, up.digest, up.listing);
                    }
                    return Ok(tree_part(label, up.count, up.digest, Some(dirs.len())));
                }
            }
        }
        _ => {}
    }
    let select = if pattern.is_empty() {
        None
    } else {
        Some(expand(pattern, root)?)
    };
    let globbed = select.is_some();
    let walked = walk::files(root, how.no_ignore, select, how.skip.clone())
        .map_err(|why| bad(spec, &why))?;
    if globbed && walked.found.is_empty() && !how.no_ignore {
        return Err(bad(
            pattern,
            "no file is left once ignored paths are skipped (.gitignore, .ignore, .git/); --no-ignore takes them",
        ));
    }
    let shard = || {
        watched
            .as_ref()
            .map_or_else(shard_of, |(_, _, s)| s.clone())
    };
    let hashes = hash_all(&walked.found, shard, began, spec)?;
    let count = walked.found.len() as u64;
    let watched = watched.filter(|_| walked.watchable);
    let (digest, frames) = digest(root, &walked.found, &hashes, watched.is_some());
    if let Some((watch, _, shard)) = watched {
        watch.remember(count, digest, listing::save(&shard, &frames));
    }
    Ok(tree_part(label, count, digest, None))
}

/// A walk's component: how many files, and the digest of their paths and
/// contents (`reread`: as the daemon's watch remembered them, with this
/// many directories read again).
fn tree_part(label: &str, count: u64, digest: [u8; 32], reread: Option<usize>) -> Component {
    let mut shown = crate::human::count(count, "file", "files");
    match reread {
        Some(0) => shown.push_str(" (unchanged since walked: watched)"),
        Some(n) => shown.push_str(&format!(
            " ({} read again: watched)",
            crate::human::count(n as u64, "directory", "directories")
        )),
        None => {}
    }
    super::component(
        label,
        &("tree", count, serde_bytes::Bytes::new(&digest)),
        shown,
    )
}

/// The digest of the files a walk of `root` found, with their hashes; with
/// `keep`, also the framed list it was taken over (see `listing`).
fn digest(root: &Path, found: &[Found], hashes: &[[u8; 32]], keep: bool) -> ([u8; 32], Vec<u8>) {
    // Framed by hand (length-prefixed path, then the 32-byte hash): the
    // list can be long, and encoding it as CBOR first would double the work.
    // Unless kept, streamed through a small buffer: the same bytes, without
    // a list-sized allocation to fault in.
    let mut digest = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(FRAME_BUF + 4096);
    for (file, hash) in found.iter().zip(hashes) {
        listing::frame(&mut buf, relative(&file.path, root), hash);
        if buf.len() >= FRAME_BUF && !keep {
            digest.update(&buf);
            buf.clear();
        }
    }
    digest.update(&buf);
    (*digest.finalize().as_bytes(), buf)
}

const FRAME_BUF: usize = 64 << 10;

/// `path` relative to the walk's `root`, as bytes. A walk's paths are
/// `root` joined with entry names, so the root's bytes and one `/` are cut
/// off (component-wise `strip_prefix` was a visible share of the CPU over
/// 100,000 files); anything else goes through `strip_prefix`, which gives
/// the same answer for such paths.
pub(super) fn relative<'a>(path: &'a Path, root: &Path) -> &'a [u8] {
    use std::os::unix::ffi::OsStrExt;
    let (p, r) = (path.as_os_str().as_bytes(), root.as_os_str().as_bytes());
    if let Some(rest) = p.strip_prefix(r) {
        if r.ends_with(b"/") && !rest.starts_with(b"/") && !rest.is_empty() {
            return rest;
        }
        if let Some(rest) = rest.strip_prefix(b"/")
            && !rest.is_empty()
            && !rest.starts_with(b"/")
        {
            return rest;
        }
    }
    path.strip_prefix(root)
        .unwrap_or(path)
        .as_os_str()
        .as_bytes()
}

pub(super) fn hash_all(
    found: &[Found],
    shard: impl FnOnce() -> String,
    began: SystemTime,
    spec: &str,
) -> Result<Vec<[u8; 32]>> {
    hashing::hash_all(found, shard, began).map_err(|Unreadable(path, e)| {
        bad(
            spec,
            &format!("cannot read `{}`: {}", path.display(), walk::io_text(&e)),
        )
    })
}

/// The glob's literal base directory: its leading parts without a wildcard.
fn literal_base(pattern: &str) -> PathBuf {
    let mut literal = Vec::new();
    for part in pattern.split('/') {
        if part.contains(['*', '?', '[']) {
            break;
        }
        literal.push(part);
    }
    match literal.join("/") {
        s if s.is_empty() && pattern.starts_with('/') => PathBuf::from("/"),
        s if s.is_empty() => PathBuf::from("."),
        s => PathBuf::from(s),
    }
}

/// What of `base` (its literal base) the glob matches.
fn expand(pattern: &str, base: &Path) -> Result<Select> {
    let paths = glob::glob(pattern)
        .map_err(|e| Exit::usage(format!("--input `{pattern}` is not a valid glob: {e}")))?;
    let plain_base = plain(base);
    let mut rels = Vec::new();
    for path in paths.filter_map(|p| p.ok()) {
        if let Ok(rel) = plain(&path).strip_prefix(&plain_base) {
            rels.push(rel.to_path_buf());
        }
    }
    if rels.is_empty() {
        return Err(missing(pattern, "no path matches this glob"));
    }
    Ok(Select::new(rels))
}

/// A path without `.` components, for comparing.
fn plain(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != PathPart::CurDir)
        .collect()
}

/// The real path of `root` (as given, when it cannot be had).
fn real(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

/// The hash-cache shard of one `--input`: this machine, the input's real
/// place, and what selects its files.
fn shard_name(place: &Path, select: &[u8], no_ignore: bool) -> String {
    let host = rustix::system::uname();
    let mut h = blake3::Hasher::new();
    for part in [
        host.nodename().to_bytes(),
        std::os::unix::ffi::OsStrExt::as_bytes(place.as_os_str()),
        select,
        &[u8::from(no_ignore)],
    ] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().to_hex()[..32].to_string()
}

fn missing(path: &str, why: &str) -> anyhow::Error {
    Exit::usage(format!(
        "--input `{path}`: {why}; fix the path or drop the --input (the command did not run)"
    ))
}

fn bad(path: &str, why: &str) -> anyhow::Error {
    Exit::usage(format!("--input `{path}`: {why} (the command did not run)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_match_strip_prefix() {
        for root in [
            "tree", "tree/", "./tree", ".", "./", "/", "/a//b", "a/./b", "tree/.",
        ] {
            for name in ["f", ".env", "d/f", "d/.hidden/x", "..x"] {
                let path = Path::new(root).join(name);
                let want = path.strip_prefix(root).unwrap();
                let got = relative(&path, Path::new(root));
                assert_eq!(got, want.as_os_str().as_encoded_bytes(), "{root} + {name}");
            }
        }
    }
}
