//! Paths from a stored archive, checked before use, and the directory
//! descriptors writes go through: opened one level at a time with
//! `O_NOFOLLOW`, so a symlink in the tree never redirects a write.
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};

use super::Declared;

/// An archived path as a relative path of plain components, or why not.
pub fn checked(path: &[u8]) -> Result<&Path, &'static str> {
    if path.is_empty() || path.contains(&0) {
        return Err("an output path is empty or holds a NUL byte");
    }
    if path.starts_with(b"/") {
        return Err("an output path is absolute");
    }
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => return Err("an output path is not plain"),
            b".." => return Err("an output path climbs out with `..`"),
            b".git" => return Err("an output path lies in .git/"),
            _ => {}
        }
    }
    Ok(Path::new(OsStr::from_bytes(path)))
}

/// Whether a symlink at `link` (relative to the working directory) with
/// `target` points inside the declared outputs, resolved by its text: a
/// relative target that never climbs above the working directory.
pub fn link_stays(declared: &Declared, link: &[u8], target: &[u8]) -> bool {
    if target.is_empty() || target.contains(&0) || target.starts_with(b"/") {
        return false;
    }
    let mut at: Vec<&[u8]> = link.split(|&b| b == b'/').collect();
    at.pop();
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if at.pop().is_none() {
                    return false;
                }
            }
            b".git" => return false,
            name => at.push(name),
        }
    }
    let resolved: PathBuf = at.iter().map(|p| OsStr::from_bytes(p)).collect();
    !resolved.as_os_str().is_empty() && declared.covers(&resolved)
}

/// The local tree is in the way of a restore (not the entry's fault).
#[derive(Debug)]
pub struct Blocked(pub String);

/// What is at `path` locally, not following a final symlink; `None` if
/// nothing. A symlink or non-directory on the way is [`Blocked`].
pub fn local_kind(path: &Path) -> Result<Option<FileType>, Blocked> {
    let mut dir: Option<OwnedFd> = None;
    let parts: Vec<&OsStr> = path.iter().collect();
    for (i, part) in parts.iter().enumerate() {
        let at = dir.as_ref().map_or(CWD, |d| d.as_fd());
        let stat = match rustix::fs::statat(at, *part, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(blocked(path, &e.to_string())),
        };
        let kind = FileType::from_raw_mode(stat.st_mode);
        if i + 1 == parts.len() {
            return Ok(Some(kind));
        }
        if kind != FileType::Directory {
            let on_the_way: PathBuf = parts[..=i].iter().collect();
            return Err(blocked(
                path,
                &format!("`{}` is not a directory", on_the_way.display()),
            ));
        }
        dir = Some(open_dir(at, part).map_err(|e| blocked(path, &e.to_string()))?);
    }
    Ok(None)
}

pub fn blocked(path: &Path, why: &str) -> Blocked {
    Blocked(format!("`{}`: {why}", path.display()))
}

fn open_dir(at: impl AsFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Open the directory `dir` (relative to the working directory), making
/// what is missing, one level at a time, never through a symlink; each
/// directory made is added to `made`.
pub fn make_dirs(dir: &Path, made: &mut Vec<PathBuf>) -> io::Result<OwnedFd> {
    let mut fd = open_dir(CWD, OsStr::new("."))?;
    let mut at = PathBuf::new();
    for part in dir.iter() {
        at.push(part);
        fd = match open_dir(&fd, part) {
            Ok(next) => next,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&fd, part, Mode::from_raw_mode(0o755)) {
                    Ok(()) => made.push(at.clone()),
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_dir(&fd, part)?
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(fd)
}

/// Open the existing directory `dir`, never through a symlink.
pub fn open_dirs(dir: &Path) -> io::Result<OwnedFd> {
    let mut fd = open_dir(CWD, OsStr::new("."))?;
    for part in dir.iter() {
        fd = open_dir(&fd, part)?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"a/../../x",
            b"..",
            b".git/config",
            b"a//b",
            b"a/./b",
            b"a\0b",
        ] {
            assert!(checked(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(checked(b"dist/a\n\xff").is_ok());
    }

    #[test]
    fn links_must_stay_inside() {
        let d = Declared::parse(&["dist".into()]).unwrap();
        assert!(link_stays(&d, b"dist/a", b"b"));
        assert!(link_stays(&d, b"dist/x/a", b"../b"));
        assert!(!link_stays(&d, b"dist/a", b"../src"));
        assert!(!link_stays(&d, b"dist/a", b"../../etc"));
        assert!(!link_stays(&d, b"dist/a", b"/home/u/.aws/credentials"));
        assert!(!link_stays(&d, b"dist/a", b".."));
    }
}
