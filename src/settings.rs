//! The settings of one invocation, each from the highest layer that sets
//! it (flag > `CACHIER_*` variable > config file > default). Each backend
//! gets its own [`Section`] as given; its defaults and checks are its own.
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::cli::GlobalArgs;
use crate::config::{FileLayer, TierConf, parse_bool};
use crate::error::Exit;
use crate::store::param::{Given, Kind, Param, Section, Value};
use crate::store::registry::BACKENDS;
use crate::units::{parse_duration, parse_size};

pub use crate::store::registry::Backend;

/// One level of a stack of backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub backend: Backend,
    /// This tier's own freshness bound (`[tiers.NAME] stale_after`); else the call's.
    pub stale_after: Option<Duration>,
    /// `[tiers.NAME] read_only`: served from, never written to.
    pub read_only: bool,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The backends in lookup order: one, or a tiered stack.
    pub tiers: Vec<Tier>,
    /// Each backend's own settings, as given (flag, variable, config file):
    /// the backend applies its defaults and checks them.
    pub sections: Vec<(Backend, Section)>,
    pub cache_dir: PathBuf,
    pub strict: bool,
    pub verbose: bool,
    /// `--read-only`: hits are served, nothing is written anywhere.
    pub read_only: bool,
    /// How long a backend that failed is skipped by later runs.
    pub retry_after: Duration,
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
    /// Config `signing_key_file` (`CACHIER_SIGNING_KEY` wins; see [`crate::sign`]).
    pub signing_key_file: Option<PathBuf>,
    /// How bodies sent to a server are encoded (`compression`, default zstd).
    pub compression: crate::entry::Encoding,
    /// Lookups on a server go through the daemon's pooled connections
    /// (config `pool`, `CACHIER_POOL`; default on, Linux).
    pub pool: bool,
    /// Large `--input` trees are watched by the daemon (config `watch`,
    /// `CACHIER_WATCH`; default on, Linux).
    pub watch: bool,
}

/// How often `--cleanup-stale` may sweep a namespace, unless configured.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// How long a failed backend is skipped, unless configured.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

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
        .unwrap_or_else(|| vec![Backend::default()]);
        let tier_conf = file.tiers();
        let mut tiers: Vec<Tier> = stack
            .iter()
            .map(|&backend| {
                let conf = tier_conf.iter().find(|t| t.backend == backend);
                Tier {
                    backend,
                    stale_after: conf.and_then(|t| t.stale_after),
                    read_only: conf.is_some_and(|t| t.read_only),
                }
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
        let sections = BACKENDS
            .iter()
            .map(|def| {
                let backend = Backend::parse(def.name).map_err(Exit::usage)?;
                let tier = tier_conf.iter().find(|t| t.backend == backend);
                Ok((backend, section(def.params, global, tier, &file)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Settings {
            tiers,
            sections,
            cache_dir,
            strict: global.strict,
            verbose: global.verbose,
            read_only: global.read_only
                || env_parsed("CACHIER_READ_ONLY", parse_bool)?
                    .or(file.flag("read_only"))
                    .unwrap_or(false),
            retry_after: env_parsed("CACHIER_RETRY_AFTER", parse_duration)?
                .or(file.duration("retry_after"))
                .unwrap_or(DEFAULT_RETRY_AFTER),
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
            signing_key_file: file.dir("signing_key_file"),
            pool: env_parsed("CACHIER_POOL", parse_bool)?
                .or(file.flag("pool"))
                .unwrap_or(true),
            watch: env_parsed("CACHIER_WATCH", parse_bool)?
                .or(file.flag("watch"))
                .unwrap_or(true),
            compression: env_parsed("CACHIER_COMPRESSION", crate::store::compress::parse)?
                .or(file
                    .text("compression")
                    .map(|t| crate::store::compress::parse(&t))
                    .transpose()
                    .map_err(|e| Exit::usage(format!("config key compression: {e}")))?)
                .unwrap_or(crate::entry::Encoding::Zstd),
        })
    }

    /// The settings `backend` was given.
    pub fn section(&self, backend: Backend) -> &Section {
        static EMPTY: Section = Section { given: Vec::new() };
        self.sections
            .iter()
            .find(|(b, _)| *b == backend)
            .map_or(&EMPTY, |(_, s)| s)
    }
}

/// One backend's values, each from the highest layer that sets it: its flag,
/// its variable, its tier's table (`[tiers.NAME] url`), the file's key.
fn section(
    params: &'static [Param],
    global: &GlobalArgs,
    tier: Option<&TierConf>,
    file: &FileLayer,
) -> Result<Section> {
    let mut given = Vec::new();
    for p in params {
        let flag = p
            .flag
            .and_then(|f| global.backend_flags.value(p.key).map(|v| (v, f)));
        let (value, from) = if let Some((text, flag)) = flag {
            let from = format!("--{flag}");
            (
                parse_value(p.kind, text).map_err(|e| Exit::usage(format!("{from}: {e}")))?,
                from,
            )
        } else if let Some(raw) = var(p.var) {
            let value = parse_value(p.kind, &lossy(&raw))
                .map_err(|e| Exit::usage(format!("{}: {e}", p.var)))?;
            (value, p.var.to_string())
        } else if let Some(url) = tier
            .filter(|_| p.tier_key == Some("url"))
            .and_then(|t| t.url.clone())
        {
            (
                Value::Text(url),
                format!("[tiers.{}] url", tier.map_or("", |t| t.backend.name())),
            )
        } else if let Some(value) = file_value(file, p) {
            (value, format!("config key {}", p.key))
        } else {
            continue;
        };
        given.push(Given {
            key: p.key,
            var: p.var,
            value,
            from,
        });
    }
    Ok(Section { given })
}

/// A flag's or variable's text as a value of `kind`.
fn parse_value(kind: Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Text => Ok(Value::Text(text.to_string())),
        Kind::Size => parse_size(text).map(Value::Size),
        Kind::Duration => parse_duration(text).map(Value::Duration),
    }
}

/// The file's value for `param` (checked when the file was read).
fn file_value(file: &FileLayer, param: &Param) -> Option<Value> {
    match param.kind {
        Kind::Text => file.text(param.key).map(Value::Text),
        Kind::Size => file.size(param.key).map(Value::Size),
        Kind::Duration => file.duration(param.key).map(Value::Duration),
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
