//! The backends the conformance suite runs on. A new backend adds a variant
//! here and one `conformance!` line in conformance.rs.
//!
//! Server backends read their server from a variable that `scripts/test`
//! sets (`CACHIER_TEST_PG_URL`); each test gets its own fresh database.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    File,
    /// The `sql` store on its default SQLite database, `<dir>/cache/cachier.db`.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    /// The `sql` store on PostgreSQL, one database per test.
    Postgres,
}

/// Where the test PostgreSQL server is (a superuser's URL), if it is set.
pub fn pg_url() -> Option<String> {
    std::env::var("CACHIER_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether the tests of `what` can run, given that `present` says their
/// server is there. Under `CI=true` a missing server fails the test; else
/// the test is skipped, loudly.
pub fn require(what: &str, present: bool, var: &str) -> bool {
    if present {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "{var} is unset under CI=true: {what} tests need their server; run scripts/test"
    );
    // Straight to fd 2: libtest captures `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {what} test, {var} is unset (scripts/test starts the server) ***\n"
    );
    false
}

/// A connection to `url`, for setting up and inspecting test databases.
pub fn pg_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"))
}

/// The database private to the test in `dir`: named after the temp dir.
pub fn pg_db(dir: &Path) -> String {
    let name = dir.file_name().unwrap().to_string_lossy();
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("cachier_t_{hex}")
}

/// `url` with its database replaced by `db`.
pub fn pg_url_for(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{prefix}/{db}{query}")
}

pub fn pg_test_url(dir: &Path) -> String {
    pg_url_for(&pg_url().expect("CACHIER_TEST_PG_URL"), &pg_db(dir))
}

fn pg_test_client(dir: &Path) -> postgres::Client {
    pg_client(&pg_test_url(dir))
}

impl Backend {
    /// Whether this backend's tests can run here (see [`require`]).
    pub fn available(self) -> bool {
        match self {
            Backend::File | Backend::Sqlite => true,
            Backend::Postgres => require("postgres", pg_url().is_some(), "CACHIER_TEST_PG_URL"),
        }
    }

    /// Make the store private to the test in `dir`.
    pub fn set_up(self, dir: &Path) {
        if let Backend::Postgres = self {
            let mut admin = pg_client(&pg_url().expect("CACHIER_TEST_PG_URL"));
            admin
                .batch_execute(&format!("CREATE DATABASE \"{}\"", pg_db(dir)))
                .unwrap();
        }
    }

    /// Remove what `set_up` made, with any session a test left behind.
    pub fn tear_down(self, dir: &Path) {
        if let (Backend::Postgres, Some(url)) = (self, pg_url())
            && let Ok(mut admin) = postgres::Client::connect(&url, postgres::NoTls)
        {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", pg_db(dir));
            let _ = admin.batch_execute(&sql);
        }
    }

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
            Backend::Postgres => vec![
                ("CACHIER_BACKEND".into(), "sql".into()),
                ("CACHIER_SQL_URL".into(), pg_test_url(dir)),
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
            Backend::Postgres => {
                pg_test_client(dir)
                    .execute(
                        "UPDATE cachier_entries SET created_ms = created_ms - $1",
                        &[&(by.as_millis() as i64)],
                    )
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
            Backend::Postgres => {
                let sql = if truncate {
                    "DELETE FROM cachier_chunks c WHERE seq = \
                     (SELECT max(seq) FROM cachier_chunks d WHERE d.key = c.key)"
                } else {
                    "UPDATE cachier_chunks SET data = set_byte(data, 0, get_byte(data, 0) # 85) \
                     WHERE seq = 0 AND length(data) > 0"
                };
                assert!(pg_test_client(dir).execute(sql, &[]).unwrap() > 0);
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
            Backend::Postgres => {
                let mut client = pg_test_client(dir);
                let row = client
                    .query_one("SELECT to_regclass('cachier_entries') IS NOT NULL", &[])
                    .unwrap();
                if !row.get::<_, bool>(0) {
                    return 0;
                }
                let row = client
                    .query_one("SELECT count(*) FROM cachier_entries", &[])
                    .unwrap();
                row.get::<_, i64>(0) as usize
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
