//! The local backends' hooks: the `file` store's entry files, and the
//! `sql` store on its default SQLite database, `<dir>/cache/cachier.db`.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The `file` store.
pub struct File;

impl super::TestBackend for File {
    fn name(&self) -> &'static str {
        "file"
    }
    fn age_entries(&self, dir: &Path, by: Duration) {
        for path in entry_files(dir) {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            let mtime = file.metadata().unwrap().modified().unwrap();
            file.set_modified(mtime.checked_sub(by).unwrap_or(SystemTime::UNIX_EPOCH))
                .unwrap();
        }
    }
    fn damage_entries(&self, dir: &Path, truncate: bool) {
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
    fn count_entries(&self, dir: &Path) -> usize {
        entry_files(dir).len()
    }
}

/// The `sql` store on its default SQLite database.
pub struct Sqlite;

impl super::TestBackend for Sqlite {
    fn name(&self) -> &'static str {
        "sql"
    }
    fn age_entries(&self, dir: &Path, by: Duration) {
        let ms = by.as_millis() as i64;
        sqlite(dir)
            .execute("UPDATE entries SET created_ms = created_ms - ?1", [ms])
            .unwrap();
    }
    fn damage_entries(&self, dir: &Path, truncate: bool) {
        damage_sqlite(dir, truncate)
    }
    fn count_entries(&self, dir: &Path) -> usize {
        let path = dir.join("cache").join("cachier.db");
        if !path.exists() {
            return 0;
        }
        sqlite(dir)
            .query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize
    }
}

fn damage_sqlite(dir: &Path, truncate: bool) {
    let db = sqlite(dir);
    if truncate {
        db.execute(
            "DELETE FROM chunks WHERE rowid IN
             (SELECT max(rowid) FROM chunks GROUP BY entry)",
            [],
        )
        .unwrap();
        return;
    }
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
