//! The key's side of a tree watch: ask the daemon before a walk, hand it
//! the component after. Any failure (no daemon, a refusing or slow one, a
//! reply that does not decode) means a walk, as with no watch at all.
use std::ffi::OsString;
use std::path::Path;

/// What the daemon's watch says of a tree.
pub enum Known {
    /// Nothing changed since the walk it was handed: that walk's file count
    /// and digest.
    Same { count: u64, digest: [u8; 32] },
    /// Only files directly in `dirs` changed since a walk whose listing
    /// (see `crate::key`) hashes to `listing`.
    Changed {
        listing: [u8; 32],
        dirs: Vec<std::path::PathBuf>,
    },
    /// Walk it (the daemon watches from now on, if it can).
    Walk,
}

/// One `--input` tree's watch, for the length of one key.
pub struct Watch {
    #[cfg(target_os = "linux")]
    linux: linux::Linked,
}

impl Watch {
    /// A watch on `place` (a real path) as a walk with these settings sees
    /// it, `pattern` (a glob, or empty) naming what of it is taken; the
    /// daemon is started if none runs. `None` when none can be had.
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    pub fn open(
        place: &Path,
        no_ignore: bool,
        outputs: &[OsString],
        pattern: &str,
    ) -> Option<Watch> {
        #[cfg(target_os = "linux")]
        return linux::Linked::open(place, no_ignore, outputs, pattern)
            .map(|linux| Watch { linux });
        #[cfg(not(target_os = "linux"))]
        None
    }

    /// What changed since the walk the daemon was last handed.
    pub fn check(&mut self) -> Known {
        #[cfg(target_os = "linux")]
        return self.linux.check();
        #[cfg(not(target_os = "linux"))]
        Known::Walk
    }

    /// Hand the daemon what a walk begun after [`Watch::check`] found: the
    /// file count, digest, and the hash of its listing.
    #[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
    pub fn remember(self, count: u64, digest: [u8; 32], listing: [u8; 32]) {
        #[cfg(target_os = "linux")]
        self.linux.remember(count, digest, listing);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use serde_bytes::ByteBuf;

    use super::super::Tree;
    use super::Known;
    use crate::store::memory::daemon::client::Start;
    use crate::store::memory::daemon::paths;
    use crate::store::memory::daemon::proto::{Req, Resp};
    use crate::store::memory::store::Lazy;
    use crate::store::memory::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_MEMORY};

    /// How long a daemon has to answer our hello, and to answer a watch
    /// (the first of a tree walks its directories): past it, we walk.
    const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
    const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

    pub struct Linked {
        daemon: Lazy,
        tree: Tree,
        name: String,
        place: PathBuf,
        /// The generation the daemon gave before the walk, and the ignore
        /// files outside the tree as they were then.
        generation: Option<(u64, [u8; 32])>,
    }

    impl Linked {
        pub fn open(
            place: &Path,
            no_ignore: bool,
            outputs: &[OsString],
            pattern: &str,
        ) -> Option<Linked> {
            let cwd = if outputs.is_empty() {
                PathBuf::new()
            } else {
                std::env::current_dir().ok()?.canonicalize().ok()?
            };
            let bytes = |p: &std::ffi::OsStr| ByteBuf::from(p.as_bytes().to_vec());
            let start = Start {
                dir: paths::dir(),
                max_memory: DEFAULT_MAX_MEMORY,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
            };
            Some(Linked {
                daemon: Lazy::new(start, false, false, Some(HELLO_TIMEOUT)),
                tree: Tree {
                    root: bytes(place.as_os_str()),
                    no_ignore,
                    outputs: outputs.iter().map(|o| bytes(o)).collect(),
                    cwd: bytes(cwd.as_os_str()),
                },
                name: pattern.to_string(),
                place: place.to_path_buf(),
                generation: None,
            })
        }

        pub fn check(&mut self) -> Known {
            let outside = super::super::outside(&self.place, self.tree.no_ignore);
            let req = Req::Watch {
                tree: self.tree.clone(),
                name: self.name.clone(),
                outside: ByteBuf::from(outside.to_vec()),
            };
            let Ok(resp) = self.daemon.with(|conn| {
                conn.reply_timeout(Some(WATCH_TIMEOUT))?;
                conn.call(&req)
            }) else {
                return Known::Walk;
            };
            let record = match resp {
                Resp::Unchanged { record } => record,
                Resp::Changed {
                    record,
                    dirs,
                    generation,
                } => {
                    self.generation = Some((generation, outside));
                    let Some((_, _, listing)) = decode(&record) else {
                        return Known::Walk;
                    };
                    let dirs = dirs
                        .into_iter()
                        .map(|d| PathBuf::from(std::ffi::OsString::from_vec(d.into_vec())))
                        .collect();
                    return Known::Changed { listing, dirs };
                }
                Resp::Watching { generation } => {
                    self.generation = Some((generation, outside));
                    return Known::Walk;
                }
                _ => return Known::Walk,
            };
            match decode(&record) {
                Some((count, digest, _)) => Known::Same { count, digest },
                None => Known::Walk,
            }
        }

        pub fn remember(self, count: u64, digest: [u8; 32], listing: [u8; 32]) {
            let Some((generation, outside)) = self.generation else {
                return;
            };
            // An ignore file outside the tree changed during the walk: which
            // rules it followed is unknown.
            if super::super::outside(&self.place, self.tree.no_ignore) != outside {
                return;
            }
            let mut record = Vec::new();
            let value = (
                count,
                serde_bytes::Bytes::new(&digest),
                serde_bytes::Bytes::new(&listing),
            );
            if ciborium::into_writer(&value, &mut record).is_err() {
                return;
            }
            let req = Req::Remember {
                tree: self.tree,
                name: self.name,
                outside: ByteBuf::from(outside.to_vec()),
                generation,
                record: ByteBuf::from(record),
            };
            let _ = self.daemon.with(|conn| conn.send(&req));
        }
    }

    /// A remembered record: file count, digest, listing hash.
    fn decode(record: &[u8]) -> Option<(u64, [u8; 32], [u8; 32])> {
        let (count, digest, listing): (u64, ByteBuf, ByteBuf) =
            ciborium::from_reader(record).ok()?;
        Some((
            count,
            digest.as_ref().try_into().ok()?,
            listing.as_ref().try_into().ok()?,
        ))
    }
}
