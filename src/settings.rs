//! Global settings resolved once: flags, then environment, then the config
//! file, then built-in defaults.
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::cli::GlobalArgs;
use crate::config::{FileLayer, parse_bool};
use crate::error::Exit;
use crate::units::{parse_duration, parse_size};

/// Which store holds the entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    File,
    /// SQLite by default, PostgreSQL by URL (see [`SqlUrl`]).
    Sql,
    /// A Redis server or cluster, by URL.
    Redis,
    /// A MongoDB server, by URL.
    Mongo,
    /// The per-user daemon holding entries in RAM.
    Memory,
}

const BACKENDS: &str = "file (alias pickle), sql, redis, mongo, memory";

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Sql => "sql",
            Backend::Redis => "redis",
            Backend::Mongo => "mongo",
            Backend::Memory => "memory",
        }
    }

    /// The backend called `name`; the caller says where the name came from.
    pub fn parse(name: &str) -> Result<Backend, String> {
        match name.trim() {
            "file" | "pickle" => Ok(Backend::File),
            "sql" => Ok(Backend::Sql),
            "redis" => Ok(Backend::Redis),
            "mongo" | "mongodb" => Ok(Backend::Mongo),
            "memory" => Ok(Backend::Memory),
            _ => Err(format!(
                "unknown backend `{name}`; choose one of: {BACKENDS}"
            )),
        }
    }
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backend: Backend,
    pub cache_dir: PathBuf,
    pub strict: bool,
    pub verbose: bool,
    /// `false` under `CACHIER_DISABLE=1`: every run is a plain pass-through.
    pub enabled: bool,
    /// Defaults for the run flags of the same names.
    pub stale_after: Option<Duration>,
    pub wait_for_calc_timeout: Option<Duration>,
    pub entry_size_limit: Option<u64>,
    /// Least-recently-used eviction keeps the store under this (file store).
    pub max_size: Option<u64>,
    /// Every run cleans its namespace's stale entries, at most once per interval.
    pub cleanup_stale: bool,
    pub cleanup_interval: Duration,
    pub urls: Urls,
    /// The memory daemon's RAM cap (LRU eviction past it).
    pub max_memory: u64,
    /// The memory daemon exits after this long without a request.
    #[allow(dead_code)] // read by the memory daemon, next
    pub idle_timeout: Duration,
    /// The sql backend's database, checked when `sql` is the backend.
    pub sql: SqlUrl,
}

/// Where the server backends are: flag, variable or config file.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    pub sql: Option<String>,
    pub redis: Option<String>,
    /// What every Redis key of this cache starts with (default `cachier`).
    pub redis_prefix: Option<String>,
    pub mongo: Option<String>,
    pub mongo_collection: Option<String>,
}

/// Where the sql backend keeps its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl SqlUrl {
    /// The database `sql` uses: the URL's, or SQLite beside the file store.
    pub fn resolve(url: Option<&str>, cache_dir: &std::path::Path) -> Result<SqlUrl, String> {
        let Some(url) = url else {
            return Ok(SqlUrl::Sqlite(cache_dir.join("cachier.db")));
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a path, e.g. sqlite:///home/me/cache.db".into());
            }
            return Ok(SqlUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            return Ok(SqlUrl::Postgres(url.to_string()));
        }
        Err("the sql URL must start with sqlite:// or postgresql://".into())
    }
}

/// How often `--cleanup-stale` may sweep a namespace, unless configured.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The memory daemon's RAM cap, unless configured.
pub const DEFAULT_MAX_MEMORY: u64 = 512 << 20;

/// How long the memory daemon lives without requests, unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

impl Settings {
    /// Each field: its flag (where `GlobalArgs` has one), else its
    /// `CACHIER_*` variable, else the config file, else the default. The
    /// run flags of the same names override these in `cachier run`.
    pub fn resolve(global: &GlobalArgs) -> Result<Settings> {
        // A missing file costs one failed open.
        let file = FileLayer::load()?;
        let backend = match &global.backend {
            Some(name) => {
                Some(Backend::parse(name).map_err(|e| Exit::usage(format!("--backend: {e}")))?)
            }
            None => env_parsed("CACHIER_BACKEND", Backend::parse)?,
        }
        .or(file.backend())
        .unwrap_or(Backend::File);
        let text = |name: &str, key: &str| var(name).map(|v| lossy(&v)).or_else(|| file.text(key));
        let sql_url = global
            .sql_url
            .clone()
            .or_else(|| text("CACHIER_SQL_URL", "sql_url"));
        let cache_dir = match (&global.cache_dir, var("CACHIER_DIR"), file.dir("cache_dir")) {
            (Some(dir), _, _) => dir.clone(),
            (None, Some(dir), _) => PathBuf::from(dir),
            (None, None, Some(dir)) => dir,
            (None, None, None) => default_cache_dir()?,
        };
        // Any value but a "no" disables: CACHIER_DISABLE=1, =yes, =true.
        let enabled = match var("CACHIER_DISABLE") {
            None => file.flag("enabled").unwrap_or(true),
            Some(v) => matches!(lossy(&v).trim(), "0" | "false" | "no" | "off"),
        };
        let sql = match backend {
            Backend::Sql => SqlUrl::resolve(sql_url.as_deref(), &cache_dir)
                .map_err(|e| Exit::usage(format!("--sql-url: {e}")))?,
            _ => SqlUrl::Sqlite(cache_dir.join("cachier.db")),
        };
        let settings = Settings {
            sql,
            backend,
            cache_dir,
            strict: global.strict,
            verbose: global.verbose,
            enabled,
            stale_after: env_parsed("CACHIER_STALE_AFTER", parse_duration)?
                .or(file.duration("stale_after")),
            wait_for_calc_timeout: env_parsed("CACHIER_WAIT_FOR_CALC_TIMEOUT", parse_duration)?
                .or(file.duration("wait_for_calc_timeout")),
            entry_size_limit: env_parsed("CACHIER_ENTRY_SIZE_LIMIT", parse_size)?
                .or(file.size("entry_size_limit")),
            max_size: env_parsed("CACHIER_MAX_SIZE", parse_size)?.or(file.size("max_size")),
            cleanup_stale: env_parsed("CACHIER_CLEANUP_STALE", parse_bool)?
                .or(file.flag("cleanup_stale"))
                .unwrap_or(false),
            cleanup_interval: env_parsed("CACHIER_CLEANUP_INTERVAL", parse_duration)?
                .or(file.duration("cleanup_interval"))
                .unwrap_or(DEFAULT_CLEANUP_INTERVAL),
            urls: Urls {
                sql: sql_url,
                redis: global
                    .redis_url
                    .clone()
                    .or_else(|| text("CACHIER_REDIS_URL", "redis_url")),
                redis_prefix: text("CACHIER_REDIS_PREFIX", "redis_prefix"),
                mongo: global
                    .mongo_url
                    .clone()
                    .or_else(|| text("CACHIER_MONGO_URL", "mongo_url")),
                mongo_collection: global
                    .mongo_collection
                    .clone()
                    .or_else(|| text("CACHIER_MONGO_COLLECTION", "mongo_collection")),
            },
            max_memory: match global.max_memory {
                Some(size) => size,
                None => env_parsed("CACHIER_MAX_MEMORY", parse_size)?
                    .or(file.size("max_memory"))
                    .unwrap_or(DEFAULT_MAX_MEMORY),
            },
            idle_timeout: env_parsed("CACHIER_IDLE_TIMEOUT", parse_duration)?
                .or(file.duration("idle_timeout"))
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
        };
        // A bad URL of the chosen backend is a usage error, before anything runs.
        crate::store::check(&settings).map_err(Exit::usage)?;
        Ok(settings)
    }
}

fn env_parsed<T>(name: &str, parse: fn(&str) -> Result<T, String>) -> Result<Option<T>> {
    match var(name) {
        None => Ok(None),
        Some(raw) => parse(&lossy(&raw))
            .map(Some)
            .map_err(|e| Exit::usage(format!("{name}: {e}"))),
    }
}

fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn lossy(v: &OsString) -> String {
    v.to_string_lossy().into_owned()
}

fn default_cache_dir() -> Result<PathBuf> {
    directories::BaseDirs::new()
        .map(|d| d.cache_dir().join("cachier"))
        .ok_or_else(|| Exit::failed("cannot find a home directory for the cache; set CACHIER_DIR"))
}
