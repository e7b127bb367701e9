//! The backends the conformance suite runs on. A new backend adds a variant
//! here, its hooks in a module of its own, and one `suite!` line in
//! conformance.rs.
//!
//! Server backends read their server from a variable that `scripts/test`
//! sets (`CACHIER_TEST_PG_URL`); each test gets its own fresh database.
pub mod memory;
mod mongo;
mod postgres;
mod redis;

#[cfg(feature = "mongo")]
pub use mongo::{mongo_test_db, mongo_test_url};
pub use postgres::{pg_client, pg_db, pg_test_url};
pub use redis::{redis_prefix, redis_url};

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
    /// A single Redis server, one key prefix per test.
    Redis,
    /// A 3-master Redis Cluster, one key prefix per test.
    RedisCluster,
    /// A MongoDB-protocol server, one database per test.
    #[cfg_attr(not(feature = "mongo"), allow(dead_code))]
    Mongo,
    /// The per-user memory daemon, one per test (its own runtime dir).
    Memory,
    /// Tiers: `file,sql` (SQLite).
    FileSql,
    /// Tiers: `memory,redis,sql` (PostgreSQL), the fleet's stack.
    Stack,
}

impl Backend {
    /// The backends a tiered variant stacks, in lookup order; empty for a
    /// plain one.
    pub fn tiers(self) -> &'static [Backend] {
        match self {
            Backend::FileSql => &[Backend::File, Backend::Sqlite],
            Backend::Stack => &[Backend::Memory, Backend::Redis, Backend::Postgres],
            _ => &[],
        }
    }

    /// The tier names a tiered variant reports (`stats`, `ls`, `clear`).
    pub fn tier_names(self) -> Vec<&'static str> {
        self.tiers()
            .iter()
            .map(|t| match t {
                Backend::File => "file",
                Backend::Sqlite | Backend::Postgres => "sql",
                Backend::Redis | Backend::RedisCluster => "redis",
                Backend::Mongo => "mongo",
                Backend::Memory => "memory",
                Backend::FileSql | Backend::Stack => unreachable!("tiers do not nest"),
            })
            .collect()
    }
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

/// `program` if it was found; else, like [`require`], a failure under
/// `CI=true` and a loud skip (`None`) otherwise. `hint` says how to get it.
pub fn require_program(what: &str, program: Option<PathBuf>, hint: &str) -> Option<PathBuf> {
    if program.is_some() {
        return program;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "no server binary under CI=true: {what} tests need it ({hint})"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {what} test, no server binary ({hint}) ***\n"
    );
    None
}

impl Backend {
    /// Whether this backend's tests can run here (see [`require`]).
    pub fn available(self) -> bool {
        match self {
            Backend::File | Backend::Sqlite => true,
            Backend::Postgres => require("postgres", pg_url().is_some(), "CACHIER_TEST_PG_URL"),
            Backend::Redis => redis::available(false),
            Backend::RedisCluster => redis::available(true),
            Backend::Mongo => mongo::available(),
            Backend::Memory => memory::available(),
            Backend::FileSql | Backend::Stack => self.tiers().iter().all(|t| t.available()),
        }
    }

    /// Make the store private to the test in `dir`.
    pub fn set_up(self, dir: &Path) {
        match self {
            Backend::File | Backend::Sqlite => {}
            Backend::Postgres => postgres::set_up(dir),
            Backend::Redis => redis::set_up(dir, false),
            Backend::RedisCluster => redis::set_up(dir, true),
            Backend::Mongo => mongo::set_up(dir),
            Backend::Memory => memory::set_up(dir),
            Backend::FileSql | Backend::Stack => self.tiers().iter().for_each(|t| t.set_up(dir)),
        }
    }

    /// Remove what `set_up` made, with anything a test left behind.
    pub fn tear_down(self, dir: &Path) {
        match self {
            Backend::File | Backend::Sqlite => {}
            Backend::Postgres => postgres::tear_down(dir),
            Backend::Redis => redis::tear_down(dir, false),
            Backend::RedisCluster => redis::tear_down(dir, true),
            Backend::Mongo => mongo::tear_down(dir),
            Backend::Memory => memory::tear_down(dir),
            Backend::FileSql | Backend::Stack => self.tiers().iter().for_each(|t| t.tear_down(dir)),
        }
    }

    /// Environment that points cachier at this backend, private to `dir`.
    pub fn env(self, dir: &Path) -> Vec<(String, String)> {
        if !self.tiers().is_empty() {
            let mut env: Vec<(String, String)> = Vec::new();
            for tier in self.tiers() {
                for (k, v) in tier.env(dir) {
                    match env.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) if k == "CACHIER_BACKEND" => e.1 = format!("{},{v}", e.1),
                        Some(e) => e.1 = v,
                        None => env.push((k, v)),
                    }
                }
            }
            return env;
        }
        let name = match self {
            Backend::FileSql | Backend::Stack => unreachable!("tiers are handled above"),
            Backend::File => "file",
            Backend::Sqlite | Backend::Postgres => "sql",
            Backend::Redis | Backend::RedisCluster => "redis",
            Backend::Mongo => "mongo",
            Backend::Memory => "memory",
        };
        let mut env = vec![
            ("CACHIER_BACKEND".to_string(), name.to_string()),
            (
                "CACHIER_DIR".to_string(),
                dir.join("cache").display().to_string(),
            ),
        ];
        env.extend(match self {
            Backend::File | Backend::Sqlite | Backend::FileSql | Backend::Stack => Vec::new(),
            Backend::Postgres => vec![("CACHIER_SQL_URL".to_string(), pg_test_url(dir))],
            Backend::Redis => redis::env(dir, false),
            Backend::RedisCluster => redis::env(dir, true),
            Backend::Mongo => mongo::env(dir),
            Backend::Memory => memory::env(dir),
        });
        env
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
            Backend::Postgres => postgres::age_entries(dir, by),
            Backend::Redis => redis::age_entries(dir, false, by),
            Backend::RedisCluster => redis::age_entries(dir, true, by),
            Backend::Mongo => mongo::age_entries(dir, by),
            Backend::Memory => memory::age_entries(dir, by),
            Backend::FileSql | Backend::Stack => {
                self.tiers().iter().for_each(|t| t.age_entries(dir, by))
            }
        }
    }

    /// Damage every stored entry: `truncate` cuts it short (drops its last
    /// chunk), otherwise one output byte is flipped.
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
            Backend::Sqlite => damage_sqlite(dir, truncate),
            Backend::Postgres => postgres::damage_entries(dir, truncate),
            Backend::Redis => redis::damage_entries(dir, false, truncate),
            Backend::RedisCluster => redis::damage_entries(dir, true, truncate),
            Backend::Mongo => mongo::damage_entries(dir, truncate),
            Backend::Memory => memory::damage_entries(dir, truncate),
            Backend::FileSql | Backend::Stack => self
                .tiers()
                .iter()
                .for_each(|t| t.damage_entries(dir, truncate)),
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
            Backend::Postgres => postgres::count_entries(dir),
            Backend::Redis => redis::count_entries(dir, false),
            Backend::RedisCluster => redis::count_entries(dir, true),
            Backend::Mongo => mongo::count_entries(dir),
            Backend::Memory => memory::count_entries(dir),
            // Every tier holds each entry once it is stored or served.
            Backend::FileSql | Backend::Stack => self
                .tiers()
                .iter()
                .map(|t| t.count_entries(dir))
                .max()
                .unwrap_or(0),
        }
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
