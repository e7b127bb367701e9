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

    /// A comma-separated stack (`memory,redis,sql`), in lookup order, each
    /// backend at most once.
    pub fn parse_list(text: &str) -> Result<Vec<Backend>, String> {
        let mut stack = Vec::new();
        for name in text.split(',') {
            if name.trim().is_empty() {
                return Err(format!(
                    "`{text}` has an empty backend name; write e.g. memory,redis,sql"
                ));
            }
            push_tier(&mut stack, Backend::parse(name)?)?;
        }
        Ok(stack)
    }

    /// How widely the store is shared: a tiered stack claims a key on its
    /// most shared tier, so a fleet runs the command once.
    pub fn reach(self) -> u8 {
        match self {
            Backend::Memory => 0,
            Backend::File => 1,
            Backend::Sql => 2,
            Backend::Redis | Backend::Mongo => 3,
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

/// Add `backend` to a stack, refusing a duplicate.
pub fn push_tier(stack: &mut Vec<Backend>, backend: Backend) -> Result<(), String> {
    if stack.contains(&backend) {
        return Err(format!(
            "backend `{}` is listed twice; name each tier once",
            backend.name()
        ));
    }
    stack.push(backend);
    Ok(())
}

/// One level of a stack of backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub backend: Backend,
    /// This tier's own freshness bound (`[tiers.NAME] stale_after`); else the call's.
    pub stale_after: Option<Duration>,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The first (or only) tier's backend.
    pub backend: Backend,
    /// The backends in lookup order: one, or a tiered stack.
    pub tiers: Vec<Tier>,
    pub cache_dir: PathBuf,
    pub strict: bool,
    pub verbose: bool,
    /// `false` under `CACHIER_DISABLE=1`: every run is a plain pass-through.
    pub enabled: bool,
    /// Defaults for the run flags of the same names.
    pub stale_after: Option<Duration>,
    /// `run --max-age`: a tiered stack skips entries older than this.
    pub max_age: Option<Duration>,
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
        let stack = match &global.backend {
            Some(names) => Some(
                Backend::parse_list(names).map_err(|e| Exit::usage(format!("--backend: {e}")))?,
            ),
            None => env_parsed("CACHIER_BACKEND", Backend::parse_list)?,
        }
        .or_else(|| file.backend())
        .unwrap_or_else(|| vec![Backend::File]);
        let tier_conf = file.tiers();
        let mut tiers: Vec<Tier> = stack
            .iter()
            .map(|&backend| Tier {
                backend,
                stale_after: tier_conf
                    .iter()
                    .find(|t| t.backend == backend)
                    .and_then(|t| t.stale_after),
            })
            .collect();
        if let Some(name) = &global.tier {
            let wanted = Backend::parse(name).map_err(|e| Exit::usage(format!("--tier: {e}")))?;
            let names: Vec<&str> = stack.iter().map(|b| b.name()).collect();
            tiers.retain(|t| t.backend == wanted);
            if tiers.is_empty() {
                return Err(Exit::usage(format!(
                    "--tier {name}: not a tier of the backend stack {}; name one of them",
                    names.join(",")
                )));
            }
        }
        let backend = tiers[0].backend;
        let uses = |b: Backend| tiers.iter().any(|t| t.backend == b);
        // Flag, then variable, then the tier's own url, then the top-level key.
        let url = |flag: &Option<String>, name: &str, b: Backend, key: &str| {
            flag.clone()
                .or_else(|| var(name).map(|v| lossy(&v)))
                .or_else(|| {
                    tier_conf
                        .iter()
                        .find(|t| t.backend == b)
                        .and_then(|t| t.url.clone())
                })
                .or_else(|| file.text(key))
        };
        let sql_url = url(&global.sql_url, "CACHIER_SQL_URL", Backend::Sql, "sql_url");
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
        let sql = if uses(Backend::Sql) {
            SqlUrl::resolve(sql_url.as_deref(), &cache_dir)
                .map_err(|e| Exit::usage(format!("--sql-url: {e}")))?
        } else {
            SqlUrl::Sqlite(cache_dir.join("cachier.db"))
        };
        let settings = Settings {
            sql,
            backend,
            tiers,
            cache_dir,
            strict: global.strict,
            verbose: global.verbose,
            enabled,
            stale_after: env_parsed("CACHIER_STALE_AFTER", parse_duration)?
                .or(file.duration("stale_after")),
            max_age: None,
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
                redis: url(
                    &global.redis_url,
                    "CACHIER_REDIS_URL",
                    Backend::Redis,
                    "redis_url",
                ),
                redis_prefix: var("CACHIER_REDIS_PREFIX")
                    .map(|v| lossy(&v))
                    .or_else(|| file.text("redis_prefix")),
                mongo: url(
                    &global.mongo_url,
                    "CACHIER_MONGO_URL",
                    Backend::Mongo,
                    "mongo_url",
                ),
                mongo_collection: global
                    .mongo_collection
                    .clone()
                    .or_else(|| var("CACHIER_MONGO_COLLECTION").map(|v| lossy(&v)))
                    .or_else(|| file.text("mongo_collection")),
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
