//! The backends the conformance suite runs on. A new backend adds a variant
//! here and one `conformance!` line in conformance.rs.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    File,
}

impl Backend {
    /// Environment that points cachier at this backend, private to `dir`.
    pub fn env(self, dir: &Path) -> Vec<(String, String)> {
        match self {
            Backend::File => vec![
                ("CACHIER_BACKEND".into(), "file".into()),
                (
                    "CACHIER_DIR".into(),
                    dir.join("cache").display().to_string(),
                ),
            ],
        }
    }

    /// Make every stored entry `by` older, without sleeping.
    pub fn age_entries(self, dir: &Path, by: Duration) {
        match self {
            Backend::File => {
                for path in entry_files(dir) {
                    let file = std::fs::File::options().write(true).open(&path).unwrap();
                    let mtime = file.metadata().unwrap().modified().unwrap();
                    file.set_modified(mtime.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH))
                        .unwrap();
                }
            }
        }
    }

    /// Damage every stored entry: `truncate` cuts it short, otherwise one
    /// output byte is flipped.
    pub fn damage_entries(self, dir: &Path, truncate: bool) {
        match self {
            Backend::File => {
                for path in entry_files(dir) {
                    let mut bytes = std::fs::read(&path).unwrap();
                    if truncate {
                        bytes.truncate(bytes.len() / 2);
                    } else {
                        bytes[0] ^= 0x55;
                    }
                    std::fs::write(&path, bytes).unwrap();
                }
            }
        }
    }

    /// How many entries are stored.
    pub fn count_entries(self, dir: &Path) -> usize {
        match self {
            Backend::File => entry_files(dir).len(),
        }
    }
}

pub fn entry_files(dir: &Path) -> Vec<PathBuf> {
    let root = dir.join("cache").join("entries");
    let Ok(shards) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    shards
        .flat_map(|s| std::fs::read_dir(s.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect()
}
