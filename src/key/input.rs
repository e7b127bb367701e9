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
use super::walk::{self, Select};
use crate::error::Exit;

/// Add the component of one `--input`. A path or glob that names nothing,
/// an unreadable file, a symlink loop or a FIFO is a usage error: the
/// command must not run.
pub fn components(
    spec: &OsStr,
    no_ignore: bool,
    skip: Option<walk::Skip>,
    parts: &mut Vec<Component>,
) -> Result<()> {
    let text = spec.to_string_lossy();
    let label = format!("input {text}");
    let began = SystemTime::now();
    if text.contains(['*', '?', '[']) {
        let (base, select) = expand(&text)?;
        let found =
            walk::files(&base, no_ignore, Some(select), skip).map_err(|why| bad(&text, &why))?;
        if found.is_empty() && !no_ignore {
            return Err(bad(
                &text,
                "no file is left once ignored paths are skipped (.gitignore, .ignore, .git/); --no-ignore takes them",
            ));
        }
        let shard = || shard_name(&base, text.as_bytes(), no_ignore);
        parts.push(tree(&label, &base, &found, shard, began, &text)?);
        return Ok(());
    }
    let root = Path::new(spec);
    let meta = std::fs::metadata(root).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(&text, &e.to_string()),
        _ => bad(&text, &walk::io_text(&e)),
    })?;
    if meta.is_dir() {
        let found = walk::files(root, no_ignore, None, skip).map_err(|why| bad(&text, &why))?;
        let shard = || shard_name(root, b"", no_ignore);
        parts.push(tree(&label, root, &found, shard, began, &text)?);
    } else if meta.is_file() {
        let found = [Found {
            path: root.to_path_buf(),
            stamp: super::hashcache::Stamp::of(&meta),
        }];
        let shard = || shard_name(root, b"", false);
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

/// The component of the files a walk of `root` found.
fn tree(
    label: &str,
    root: &Path,
    found: &[Found],
    shard: impl FnOnce() -> String,
    began: SystemTime,
    spec: &str,
) -> Result<Component> {
    let hashes = hash_all(found, shard, began, spec)?;
    // Framed by hand (length-prefixed path, then the 32-byte hash): the
    // list can be long, and encoding it as CBOR first would double the work.
    // Streamed through a small buffer: the same bytes, without a list-sized
    // allocation to fault in.
    let mut digest = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(FRAME_BUF + 4096);
    for (file, hash) in found.iter().zip(&hashes) {
        let rel = relative(&file.path, root);
        buf.extend_from_slice(&(rel.len() as u64).to_le_bytes());
        buf.extend_from_slice(rel);
        buf.extend_from_slice(hash);
        if buf.len() >= FRAME_BUF {
            digest.update(&buf);
            buf.clear();
        }
    }
    digest.update(&buf);
    let digest = *digest.finalize().as_bytes();
    let shown = crate::human::count(found.len() as u64, "file", "files");
    Ok(super::component(
        label,
        &("tree", found.len() as u64, serde_bytes::Bytes::new(&digest)),
        shown,
    ))
}

const FRAME_BUF: usize = 64 << 10;

/// `path` relative to the walk's `root`, as bytes. A walk's paths are
/// `root` joined with entry names, so the root's bytes and one `/` are cut
/// off (component-wise `strip_prefix` was a visible share of the CPU over
/// 100,000 files); anything else goes through `strip_prefix`, which gives
/// the same answer for such paths.
fn relative<'a>(path: &'a Path, root: &Path) -> &'a [u8] {
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

fn hash_all(
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

/// The glob's literal base directory and what of it the glob matches.
fn expand(pattern: &str) -> Result<(PathBuf, Select)> {
    let paths = glob::glob(pattern)
        .map_err(|e| Exit::usage(format!("--input `{pattern}` is not a valid glob: {e}")))?;
    let mut literal = Vec::new();
    for part in pattern.split('/') {
        if part.contains(['*', '?', '[']) {
            break;
        }
        literal.push(part);
    }
    let base = match literal.join("/") {
        s if s.is_empty() && pattern.starts_with('/') => PathBuf::from("/"),
        s if s.is_empty() => PathBuf::from("."),
        s => PathBuf::from(s),
    };
    let plain_base = plain(&base);
    let mut rels = Vec::new();
    for path in paths.filter_map(|p| p.ok()) {
        if let Ok(rel) = plain(&path).strip_prefix(&plain_base) {
            rels.push(rel.to_path_buf());
        }
    }
    if rels.is_empty() {
        return Err(missing(pattern, "no path matches this glob"));
    }
    Ok((base, Select::new(rels)))
}

/// A path without `.` components, for comparing.
fn plain(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != PathPart::CurDir)
        .collect()
}

/// The hash-cache shard of one `--input`: this machine, the input's real
/// place, and what selects its files.
fn shard_name(root: &Path, select: &[u8], no_ignore: bool) -> String {
    let place = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
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
