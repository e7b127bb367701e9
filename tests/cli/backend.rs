//! The backends the conformance suite runs on. A new backend adds a variant
//! here and one `conformance!` line in conformance.rs.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    File,
    /// The `sql` store on its default SQLite database, `<dir>/cache/cachier.db`.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
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
            Backend::Sqlite => vec![
                ("CACHIER_BACKEND".into(), "sql".into()),
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
            Backend::Sqlite => {
                let ms = by.as_millis() as i64;
                sqlite(dir)
                    .execute("UPDATE entries SET created_ms = created_ms - ?1", [ms])
                    .unwrap();
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
            Backend::Sqlite => {
                let db = sqlite(dir);
                if truncate {
                    db.execute(
                        "DELETE FROM chunks WHERE rowid IN
                         (SELECT max(rowid) FROM chunks GROUP BY entry)",
                        [],
                    )
                    .unwrap();
                } else {
                    // The first byte of each entry's first chunk.
                    let rows: Vec<(i64, Vec<u8>)> = db
                        .prepare("SELECT rowid, data FROM chunks WHERE seq = 0")
                        .unwrap()
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    for (rowid, mut data) in rows {
                        data[0] ^= 0x55;
                        db.execute(
                            "UPDATE chunks SET data = ?2 WHERE rowid = ?1",
                            rusqlite::params![rowid, data],
                        )
                        .unwrap();
                    }
                }
            }
        }
    }

    /// How many entries are stored.
    pub fn count_entries(self, dir: &Path) -> usize {
        match self {
            Backend::File => entry_files(dir).len(),
            Backend::Sqlite => {
                let path = dir.join("cache").join("cachier.db");
                if !path.exists() {
                    return 0;
                }
                sqlite(dir)
                    .query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
                    .unwrap() as usize
            }
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

/// The SQLite database a `Backend::Sqlite` test uses.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub fn sqlite(dir: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(dir.join("cache").join("cachier.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db
}
