//! `--output`: the files a command makes, declared, captured into an entry
//! after a stored run and restored from it on a hit (SPEC §1.8).
//!
//! [`Declared`] is what the key declares; every path written on a restore
//! must lie inside it, whatever the stored archive says.
mod archive;
mod capture;
mod pattern;
mod restore;
mod safe_path;
mod stage;
mod temp;

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};

pub use archive::list;
pub use capture::{Captured, capture_into};
pub use restore::{Failure, restore};

use pattern::Glob;

use crate::error::Exit;

/// The summary of an entry's output files: the archive's length and BLAKE3
/// in the body, and what it holds (records, file bytes), which a restore
/// holds the archive to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outputs {
    pub len: u64,
    #[serde(with = "serde_bytes")]
    pub blake3: [u8; 32],
    /// Records: files, symlinks and directories.
    pub count: u64,
    /// Bytes of file content, uncompressed.
    pub size: u64,
}

impl Outputs {
    pub fn is_none(&self) -> bool {
        *self == Outputs::default()
    }
}

/// The declared outputs, relative to the working directory.
#[derive(Clone, Default)]
pub struct Declared {
    /// Literal files and directories.
    roots: Vec<PathBuf>,
    globs: Vec<Glob>,
    /// `!GLOB`: left out of captures, and refused in archives.
    excludes: Vec<Glob>,
}

impl Declared {
    /// Check each `--output`: under the working directory, outside `.git/`,
    /// a valid glob. A bad one is a usage error.
    pub fn parse(specs: &[OsString]) -> Result<Declared> {
        let mut declared = Declared::default();
        if specs.is_empty() {
            return Ok(declared);
        }
        let cwd = std::env::current_dir().map_err(|e| {
            Exit::usage(format!(
                "cannot read the working directory ({e}); --output needs one"
            ))
        })?;
        for spec in specs {
            let (exclude, raw) = match spec.as_bytes().strip_prefix(b"!") {
                Some(rest) => (true, Path::new(std::ffi::OsStr::from_bytes(rest))),
                None => (false, Path::new(spec)),
            };
            let text = spec.to_string_lossy();
            let rel = relative(raw, &cwd).map_err(|why| {
                Exit::usage(format!(
                    "--output `{text}` {why}; outputs must lie under the working directory, outside .git/"
                ))
            })?;
            let pattern_bytes = rel.as_os_str().as_bytes();
            if exclude || pattern_bytes.iter().any(|b| b"*?[".contains(b)) {
                let pattern = Glob::new(pattern_bytes).map_err(|e| {
                    Exit::usage(format!("--output `{text}` is not a valid glob: {e}"))
                })?;
                if exclude {
                    declared.excludes.push(pattern);
                } else {
                    declared.globs.push(pattern);
                }
            } else {
                declared.roots.push(rel);
            }
        }
        if declared.roots.is_empty() && declared.globs.is_empty() {
            return Err(Exit::usage(
                "--output has only exclusions ('!GLOB'); name what to keep too",
            ));
        }
        Ok(declared)
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.globs.is_empty()
    }

    /// Whether `rel` (relative to the working directory) is a declared
    /// output: under a declared path, or under a glob's match, and not
    /// excluded.
    pub fn covers(&self, rel: &Path) -> bool {
        let mut covered = false;
        for a in rel.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            if self.excludes.iter().any(|g| g.matches(a)) {
                return false;
            }
            covered |= self.roots.iter().any(|r| r == a) || self.globs.iter().any(|g| g.matches(a));
        }
        covered
    }

    /// Declared literal paths, then glob patterns, for capture.
    fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn globs(&self) -> &[Glob] {
        &self.globs
    }

    /// What the `--input` walks leave out: any path that is an output (so
    /// `--input . --output dist` hits on the second run).
    pub fn walk_filter(&self) -> crate::key::Skip {
        self.walk_filter_in(std::env::current_dir().unwrap_or_default())
    }

    /// The same, for paths relative to `cwd` (the daemon's tree watch).
    pub fn walk_filter_in(&self, cwd: PathBuf) -> crate::key::Skip {
        let me = self.clone();
        Arc::new(move |path: &Path| relative(path, &cwd).is_ok_and(|rel| me.covers(&rel)))
    }
}

/// `path` made relative to `cwd`, without `.`; an error says why it is
/// not a possible output (outside, `..`, `.git`, the directory itself).
fn relative(path: &Path, cwd: &Path) -> Result<PathBuf, &'static str> {
    let rest = if path.is_absolute() {
        path.strip_prefix(cwd)
            .map_err(|_| "lies outside the working directory")?
    } else {
        path
    };
    let mut rel = PathBuf::new();
    for part in rest.components() {
        match part {
            Component::CurDir => {}
            Component::Normal(name) if name == ".git" => return Err("lies inside .git/"),
            Component::Normal(name) => rel.push(name),
            _ => return Err("climbs out with `..`"),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err("is the working directory itself");
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(specs: &[&str]) -> Declared {
        Declared::parse(&specs.iter().map(OsString::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn covers_roots_globs_less_excludes() {
        let d = declared(&["dist", "gen/**/*.go", "!gen/**/*_test.go"]);
        assert!(d.covers(Path::new("dist")));
        assert!(d.covers(Path::new("dist/a/b")));
        assert!(!d.covers(Path::new("distx")));
        assert!(d.covers(Path::new("gen/a/x.go")));
        assert!(!d.covers(Path::new("gen/a/x_test.go")));
        assert!(!d.covers(Path::new("gen/a/x.c")));
        assert!(!d.covers(Path::new("src/main.rs")));
    }

    #[test]
    fn outside_or_git_is_refused() {
        let cwd = Path::new("/w");
        assert!(relative(Path::new("../x"), cwd).is_err());
        assert!(relative(Path::new("a/../../x"), cwd).is_err());
        assert!(relative(Path::new("/etc"), cwd).is_err());
        assert!(relative(Path::new(".git/hooks"), cwd).is_err());
        assert!(relative(Path::new("."), cwd).is_err());
        assert_eq!(relative(Path::new("/w/./d"), cwd), Ok(PathBuf::from("d")));
    }
}
