//! Where the daemon lives: `$XDG_RUNTIME_DIR/cachier/`, or without that
//! variable `<temp dir>/cachier-<uid>/`; the directory is 0700 and must be
//! ours. It holds `memory.sock` (the socket), `memory.pid` (the daemon's
//! pid, for `stop` and the tests) and `memory.lock` (taken while a daemon is
//! started, so that simultaneous first uses start exactly one).
#![cfg_attr(not(target_os = "linux"), allow(dead_code))] // only the runtime dir is used elsewhere
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub fn dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        Some(run) => run.join("cachier"),
        None => {
            std::env::temp_dir().join(format!("cachier-{}", rustix::process::getuid().as_raw()))
        }
    }
}

pub fn socket(dir: &Path) -> PathBuf {
    dir.join("memory.sock")
}

pub fn pid_file(dir: &Path) -> PathBuf {
    dir.join("memory.pid")
}

pub fn lock_file(dir: &Path) -> PathBuf {
    dir.join("memory.lock")
}

/// Create `dir` (0700) or check that the existing one is a directory of
/// ours that nobody else can enter; a too open one of ours is tightened.
pub fn ensure(dir: &Path) -> Result<()> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot create the memory daemon's directory {}",
                    dir.display()
                )
            });
        }
    }
    let stat = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?;
    let me = rustix::process::getuid().as_raw();
    if !stat.is_dir() {
        bail!("{} is not a directory; remove it", dir.display());
    }
    if stat.uid() != me {
        bail!(
            "{} belongs to uid {}, not to you (uid {me}); refusing to use it (set XDG_RUNTIME_DIR)",
            dir.display(),
            stat.uid()
        );
    }
    if stat.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
    }
    Ok(())
}

/// The pid the running daemon wrote, if any.
pub fn read_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}
