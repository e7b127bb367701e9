//! The listing of a watched tree's last walk: the exact bytes its digest is
//! taken over (each file's path relative to the walk's root, length first,
//! then its content hash, sorted by path), kept beside the hash cache's
//! shard (`<shard>.tree`, private like it). When the daemon's watch says
//! only files directly in a few directories changed, those directories
//! alone are read again and merged into it.
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;

use super::input::{self, Walking};
use super::walk;

/// Where a tree's walk starts: its root as given and its real path, its
/// hash-cache shard, the `--input` as written, and when the key began.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub root: &'a Path,
    pub place: &'a Path,
    pub shard: &'a str,
    pub spec: &'a str,
    pub began: SystemTime,
}

/// A tree's component, brought up to date from its listing.
pub struct Updated {
    pub count: u64,
    pub digest: [u8; 32],
    pub listing: [u8; 32],
}

fn path_of(shard: &str) -> Option<PathBuf> {
    super::hashcache::dir().map(|d| d.join(format!("{shard}.tree")))
}

/// Keep `frames` as the listing of the walk `shard` names; its hash.
/// (A listing that cannot be written is only a later full walk.)
pub fn save(shard: &str, frames: &[u8]) -> [u8; 32] {
    if let Some(path) = path_of(shard) {
        let _ = crate::store::kit::write_whole(&path, ".tmp", frames);
    }
    *blake3::hash(frames).as_bytes()
}

/// The tree walked from `at.root` (whose real path is `at.place`) as it is now,
/// from the listing that hashes to `want` and a fresh read of the files
/// directly in `dirs`. `None` when that cannot be trusted or done (no such
/// listing, a directory outside the tree, a link met, a file unreadable):
/// then the caller walks the whole tree, which also reports any error.
pub fn update(
    at: &Place,
    want: [u8; 32],
    dirs: &[PathBuf],
    how: &Walking,
) -> Result<Option<Updated>> {
    let Place {
        root,
        place,
        shard,
        spec,
        began,
    } = *at;
    let Some(old) = path_of(shard).and_then(|p| crate::private::read(&p)) else {
        return Ok(None);
    };
    if blake3::hash(&old).as_bytes() != &want {
        return Ok(None);
    }
    let mut changed: Vec<&[u8]> = Vec::with_capacity(dirs.len());
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(rel) = dir.strip_prefix(place) else {
            return Ok(None);
        };
        changed.push(rel.as_os_str().as_bytes());
        let walked = match walk::files_in(&root.join(rel), how.no_ignore, how.skip.clone()) {
            Ok(walked) if walked.watchable => walked,
            _ => return Ok(None),
        };
        found.extend(walked.found);
    }
    let hashes = input::hash_all(&found, || shard.to_string(), began, spec)?;
    let Some(kept) = entries(&old) else {
        return Ok(None);
    };
    let mut all: Vec<(&[u8], &[u8; 32])> = kept
        .into_iter()
        .filter(|(rel, _)| !changed.contains(&parent(rel)))
        .collect();
    for (file, hash) in found.iter().zip(&hashes) {
        all.push((input::relative(&file.path, root), hash));
    }
    all.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if all.windows(2).any(|w| w[0].0 == w[1].0) {
        return Ok(None);
    }
    let mut frames = Vec::with_capacity(old.len() + 4096);
    for (rel, hash) in &all {
        frame(&mut frames, rel, hash);
    }
    Ok(Some(Updated {
        count: all.len() as u64,
        digest: *blake3::hash(&frames).as_bytes(),
        listing: save(shard, &frames),
    }))
}

/// Append one file's frame: its path's length, its path, its hash.
pub fn frame(out: &mut Vec<u8>, rel: &[u8], hash: &[u8; 32]) {
    out.extend_from_slice(&(rel.len() as u64).to_le_bytes());
    out.extend_from_slice(rel);
    out.extend_from_slice(hash);
}

/// A listing's (path, hash) pairs; `None` if it is not well formed.
fn entries(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8; 32])>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = usize::try_from(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?)).ok()?;
        let rel = rest.get(8..8usize.checked_add(len)?)?;
        let hash: &[u8; 32] = rest.get(8 + len..8 + len + 32)?.try_into().ok()?;
        out.push((rel, hash));
        rest = &rest[8 + len + 32..];
    }
    Some(out)
}

/// The directory part of a relative path (empty for the root's own files).
fn parent(rel: &[u8]) -> &[u8] {
    rel.iter()
        .rposition(|&b| b == b'/')
        .map_or(&rel[..0], |i| &rel[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_bad_ones_are_refused() {
        let mut bytes = Vec::new();
        frame(&mut bytes, b"a", &[1; 32]);
        frame(&mut bytes, b"d/b", &[2; 32]);
        let got = entries(&bytes).unwrap();
        assert_eq!(got, vec![(&b"a"[..], &[1; 32]), (&b"d/b"[..], &[2; 32])]);
        assert_eq!(parent(got[1].0), b"d");
        assert_eq!(parent(got[0].0), b"");
        assert!(entries(&bytes[..bytes.len() - 1]).is_none());
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(entries(&huge).is_none());
    }
}
