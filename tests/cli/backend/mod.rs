//! The backends the conformance suite runs on. A new backend adds a variant
//! here and its line in [`Backend::hooks`], its [`TestBackend`] in a module
//! of its own, and its line in `on_every_backend!`.
//!
//! Server backends read their server from a variable that `scripts/test`
//! sets (`CACHIER_TEST_PG_URL`); each test gets its own fresh database.
mod local;
pub mod memory;
mod mongo;
mod pooled;
mod postgres;
mod redis;
#[cfg(feature = "s3")]
mod s3;

pub use local::{entry_files, sqlite};

#[cfg(feature = "mongo")]
pub use mongo::{mongo_test_db, mongo_test_url};
pub use postgres::{pg_client, pg_db, pg_test_url};
pub use redis::{redis_prefix, redis_url};
#[cfg(feature = "s3")]
#[allow(unused_imports)] // the s3 suites use them
pub use s3::{
    KEY_ID, SECRET, s3_body_bytes, s3_delete, s3_get, s3_listing, s3_names, s3_put, s3_test_url,
    s3_uploads, s3_url,
};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One test module per backend and stack (`file`, `postgres`, ..., each a
/// cargo feature's where it needs one), with one `#[test]` per case: each
/// calls `super::CASE(&env)` on a fresh [`crate::harness::Env`] of that
/// backend, skipped (loudly) when its server is missing outside CI. A new
/// backend adds its line here, and every suite runs on it.
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        $crate::backend::on_backend!(file = File: $($case),*);
        $crate::backend::on_backend!(postgres = Postgres: $($case),*);
        $crate::backend::on_backend!(pooled_postgres = PooledPostgres: $($case),*);
        $crate::backend::on_backend!(memory = Memory: $($case),*);
        #[cfg(feature = "sqlite")]
        $crate::backend::on_backend!(sqlite = Sqlite: $($case),*);
        #[cfg(feature = "sqlite")]
        $crate::backend::on_backend!(pooled_sqlite = PooledSqlite: $($case),*);
        #[cfg(feature = "sqlite")]
        $crate::backend::on_backend!(file_sql = FileSql: $($case),*);
        #[cfg(feature = "redis")]
        $crate::backend::on_backend!(redis = Redis: $($case),*);
        #[cfg(feature = "redis")]
        $crate::backend::on_backend!(pooled_redis = PooledRedis: $($case),*);
        #[cfg(feature = "redis")]
        $crate::backend::on_backend!(redis_cluster = RedisCluster: $($case),*);
        #[cfg(feature = "redis")]
        $crate::backend::on_backend!(memory_redis_sql = Stack: $($case),*);
        #[cfg(feature = "mongo")]
        $crate::backend::on_backend!(mongo = Mongo: $($case),*);
        #[cfg(feature = "mongo")]
        $crate::backend::on_backend!(pooled_mongo = PooledMongo: $($case),*);
        #[cfg(feature = "s3")]
        $crate::backend::on_backend!(s3 = S3: $($case),*);
        #[cfg(feature = "s3")]
        $crate::backend::on_backend!(memory_s3 = MemoryS3: $($case),*);
    };
}
pub(crate) use on_every_backend;

/// The test module of one backend (see [`on_every_backend`]).
macro_rules! on_backend {
    ($module:ident = $backend:ident: $($case:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    let backend = $crate::backend::Backend::$backend;
                    if let Some(env) = $crate::harness::Env::try_new(backend) {
                        super::$case(&env);
                    }
                }
            )*
        }
    };
}
pub(crate) use on_backend;

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
    /// An S3 bucket, one per test.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    S3,
    /// The per-user memory daemon, one per test (its own runtime dir).
    Memory,
    /// [`Backend::Postgres`], [`Backend::Redis`] and [`Backend::Mongo`]
    /// with lookups through the daemon's pooled connections.
    PooledPostgres,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    PooledRedis,
    #[cfg_attr(not(feature = "mongo"), allow(dead_code))]
    PooledMongo,
    /// [`Backend::Sqlite`] with its lookups through the daemon's open
    /// database.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    PooledSqlite,
    /// Tiers: `file,sql` (SQLite).
    FileSql,
    /// Tiers: `memory,redis,sql` (PostgreSQL), the fleet's stack.
    Stack,
    /// Tiers: `memory,s3`, a local tier in front of a bucket.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    MemoryS3,
}

impl Backend {
    /// The backends a tiered variant stacks, in lookup order; empty for a
    /// plain one.
    pub fn tiers(self) -> &'static [Backend] {
        match self {
            Backend::FileSql => &[Backend::File, Backend::Sqlite],
            Backend::Stack => &[Backend::Memory, Backend::Redis, Backend::Postgres],
            Backend::MemoryS3 => &[Backend::Memory, Backend::S3],
            _ => &[],
        }
    }

    /// The tier names a tiered variant reports (`stats`, `ls`, `clear`).
    pub fn tier_names(self) -> Vec<&'static str> {
        self.tiers().iter().map(|t| t.hooks().name()).collect()
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

/// A [`TestBackend`] whose hooks are its module's functions of the same
/// names (`available`, `set_up`, `tear_down`, `env`, `age_entries`,
/// `damage_entries`, `count_entries`).
macro_rules! hooks_from_module {
    ($ty:ident, $name:literal) => {
        impl super::TestBackend for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn available(&self) -> bool {
                available()
            }
            fn set_up(&self, dir: &Path) {
                set_up(dir)
            }
            fn tear_down(&self, dir: &Path) {
                tear_down(dir)
            }
            fn env(&self, dir: &Path) -> Vec<(String, String)> {
                env(dir)
            }
            fn age_entries(&self, dir: &Path, by: Duration) {
                age_entries(dir, by)
            }
            fn damage_entries(&self, dir: &Path, truncate: bool) {
                damage_entries(dir, truncate)
            }
            fn count_entries(&self, dir: &Path) -> usize {
                count_entries(dir)
            }
        }
    };
}
use hooks_from_module;

/// What the suites need of one backend, implemented by its module.
pub trait TestBackend: Sync {
    /// Its `--backend` name.
    fn name(&self) -> &'static str;
    /// Whether its tests can run here (see [`require`]).
    fn available(&self) -> bool {
        true
    }
    /// Make the store private to the test in `dir`.
    fn set_up(&self, _dir: &Path) {}
    /// Remove what `set_up` made, with anything a test left behind.
    fn tear_down(&self, _dir: &Path) {}
    /// Variables beyond `CACHIER_BACKEND` and `CACHIER_DIR` that point
    /// cachier at this store.
    fn env(&self, _dir: &Path) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Make every stored entry `by` older, without sleeping.
    fn age_entries(&self, dir: &Path, by: Duration);
    /// Damage every stored entry: `truncate` cuts it short, otherwise one
    /// output byte is flipped.
    fn damage_entries(&self, dir: &Path, truncate: bool);
    /// How many entries are stored.
    fn count_entries(&self, dir: &Path) -> usize;
}

impl Backend {
    /// The hooks of a plain backend (a stack is its tiers').
    fn hooks(self) -> &'static dyn TestBackend {
        match self {
            Backend::File => &local::File,
            Backend::Sqlite => &local::Sqlite,
            Backend::Postgres => &postgres::Postgres,
            Backend::Redis => &redis::Redis { cluster: false },
            Backend::RedisCluster => &redis::Redis { cluster: true },
            Backend::Mongo => &mongo::Mongo,
            #[cfg(feature = "s3")]
            Backend::S3 => &s3::S3,
            #[cfg(not(feature = "s3"))]
            Backend::S3 => unreachable!("the s3 feature is off"),
            Backend::Memory => &memory::Memory,
            Backend::PooledPostgres => &pooled::Pooled(&postgres::Postgres),
            Backend::PooledRedis => &pooled::Pooled(&redis::Redis { cluster: false }),
            Backend::PooledMongo => &pooled::Pooled(&mongo::Mongo),
            Backend::PooledSqlite => &pooled::Pooled(&local::Sqlite),
            Backend::FileSql | Backend::Stack | Backend::MemoryS3 => {
                unreachable!("a stack has no hooks of its own")
            }
        }
    }

    fn each_tier(self) -> Vec<Backend> {
        match self.tiers() {
            [] => vec![self],
            tiers => tiers.to_vec(),
        }
    }

    /// Whether this backend's tests can run here (see [`require`]).
    pub fn available(self) -> bool {
        self.each_tier().iter().all(|t| t.hooks().available())
    }

    /// Make the store private to the test in `dir`.
    pub fn set_up(self, dir: &Path) {
        self.each_tier().iter().for_each(|t| t.hooks().set_up(dir))
    }

    /// Remove what `set_up` made, with anything a test left behind.
    pub fn tear_down(self, dir: &Path) {
        self.each_tier()
            .iter()
            .for_each(|t| t.hooks().tear_down(dir))
    }

    /// Environment that points cachier at this backend, private to `dir`.
    pub fn env(self, dir: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = Vec::new();
        for tier in self.each_tier() {
            let hooks = tier.hooks();
            let own = [
                ("CACHIER_BACKEND".to_string(), hooks.name().to_string()),
                (
                    "CACHIER_DIR".to_string(),
                    dir.join("cache").display().to_string(),
                ),
            ];
            for (k, v) in own.into_iter().chain(hooks.env(dir)) {
                match env.iter_mut().find(|(ek, _)| *ek == k) {
                    Some(e) if k == "CACHIER_BACKEND" => e.1 = format!("{},{v}", e.1),
                    Some(e) => e.1 = v,
                    None => env.push((k, v)),
                }
            }
        }
        env
    }

    /// Make every stored entry `by` older, without sleeping.
    pub fn age_entries(self, dir: &Path, by: Duration) {
        self.each_tier()
            .iter()
            .for_each(|t| t.hooks().age_entries(dir, by))
    }

    /// Damage every stored entry (see [`TestBackend::damage_entries`]).
    pub fn damage_entries(self, dir: &Path, truncate: bool) {
        self.each_tier()
            .iter()
            .for_each(|t| t.hooks().damage_entries(dir, truncate))
    }

    /// How many entries are stored; in a stack, the fullest tier's count
    /// (every tier holds each entry once it is stored or served).
    pub fn count_entries(self, dir: &Path) -> usize {
        self.each_tier()
            .iter()
            .map(|t| t.hooks().count_entries(dir))
            .max()
            .unwrap_or(0)
    }
}
