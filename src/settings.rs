//! Global settings resolved once: flags, then environment, then built-in defaults.
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::cli::GlobalArgs;
use crate::error::Exit;
use crate::units::{parse_duration, parse_size};

/// Which store holds the entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    File,
}

const BACKENDS: &str = "file (alias pickle)";

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
        }
    }

    fn parse(name: &str, origin: &str) -> Result<Backend> {
        match name.trim() {
            "file" | "pickle" => Ok(Backend::File),
            "sql" | "redis" | "mongo" | "memory" => Err(Exit::usage(format!(
                "backend `{name}` ({origin}) is not available in this build yet; use --backend file"
            ))),
            _ => Err(Exit::usage(format!(
                "unknown backend `{name}` ({origin}); choose one of: {BACKENDS}"
            ))),
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
}

/// How often `--cleanup-stale` may sweep a namespace, unless configured.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(24 * 3600);

impl Settings {
    pub fn resolve(global: &GlobalArgs) -> Result<Settings> {
        let backend = match (&global.backend, var("CACHIER_BACKEND")) {
            (Some(name), _) => Backend::parse(name, "--backend")?,
            (None, Some(name)) => Backend::parse(&lossy(&name), "CACHIER_BACKEND")?,
            (None, None) => Backend::File,
        };
        let cache_dir = match (&global.cache_dir, var("CACHIER_DIR")) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => PathBuf::from(dir),
            (None, None) => default_cache_dir()?,
        };
        let enabled = match var("CACHIER_DISABLE") {
            None => true,
            Some(v) => matches!(lossy(&v).trim(), "" | "0" | "false" | "no" | "off"),
        };
        Ok(Settings {
            backend,
            cache_dir,
            strict: global.strict,
            verbose: global.verbose,
            enabled,
            stale_after: env_parsed("CACHIER_STALE_AFTER", parse_duration)?,
            wait_for_calc_timeout: env_parsed("CACHIER_WAIT_FOR_CALC_TIMEOUT", parse_duration)?,
            entry_size_limit: env_parsed("CACHIER_ENTRY_SIZE_LIMIT", parse_size)?,
            max_size: env_parsed("CACHIER_MAX_SIZE", parse_size)?,
            cleanup_stale: var("CACHIER_CLEANUP_STALE").is_some_and(|v| is_true(&lossy(&v))),
            cleanup_interval: env_parsed("CACHIER_CLEANUP_INTERVAL", parse_duration)?
                .unwrap_or(DEFAULT_CLEANUP_INTERVAL),
        })
    }
}

fn is_true(v: &str) -> bool {
    matches!(v.trim(), "1" | "true" | "yes" | "on")
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
