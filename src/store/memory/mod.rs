//! The `memory` store: entries in RAM in a per-user daemon (see
//! `daemon/`), reached over a Unix socket; `admin.rs` is what `cachier
//! daemon` does to it.
//!
//! Nothing connects until the first call; that call starts the daemon if
//! none runs (read-only never starts one: none running is an empty cache).
//! One connection serves the whole process: the claim belongs to
//! it, so when this process dies the daemon frees the claim at once. Once
//! the connection breaks (the daemon was killed) every later call of this
//! process fails at once, so a run warns once; the next run starts a new
//! daemon. Staleness is judged here, from the metadata, as elsewhere.
#[cfg(target_os = "linux")]
pub mod admin;
#[cfg(not(target_os = "linux"))]
#[path = "elsewhere.rs"]
pub mod admin;
#[cfg(target_os = "linux")]
mod body;
pub mod daemon;
#[cfg(target_os = "linux")]
pub(crate) mod store;

use std::time::Duration;

use super::Store;
use super::param::{Common, Kind, Param, Section};
use super::registry::Def;

pub static DEF: Def = Def {
    name: "memory",
    aliases: &[],
    reach: 0,
    params: &[
        Param {
            key: "max_memory",
            var: "CACHIER_MAX_MEMORY",
            flag: Some("max-memory"),
            tier_key: None,
            kind: Kind::Size,
            value_name: "SIZE",
            help: "The memory daemon's RAM cap, least recently used entries evicted past it \
                   [env: CACHIER_MAX_MEMORY] [default: 512M]",
        },
        Param {
            key: "idle_timeout",
            var: "CACHIER_IDLE_TIMEOUT",
            flag: None,
            tier_key: None,
            kind: Kind::Duration,
            value_name: "DUR",
            help: "The memory daemon exits after this long without a request [default: 15m]",
        },
    ],
    check: |_, _| Ok(()),
    open,
    pooled: |_| false,
};

/// The daemon's RAM cap, unless configured.
pub const DEFAULT_MAX_MEMORY: u64 = 512 << 20;

/// How long the daemon lives without requests, unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The memory backend's settings, defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    pub max_memory: u64,
    pub idle_timeout: Duration,
}

impl MemoryConfig {
    /// The memory backend's settings as `settings` gives them.
    pub fn of(settings: &crate::settings::Settings) -> MemoryConfig {
        MemoryConfig::from_section(settings.section(super::registry::Backend::of(&DEF)))
    }

    pub fn from_section(section: &Section) -> MemoryConfig {
        MemoryConfig {
            max_memory: section.size("max_memory").unwrap_or(DEFAULT_MAX_MEMORY),
            idle_timeout: section
                .duration("idle_timeout")
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

#[cfg(target_os = "linux")]
fn open(section: &Section, ctx: &Common) -> Box<dyn Store> {
    store::open(section, ctx)
}

#[cfg(not(target_os = "linux"))]
fn open(_: &Section, _: &Common) -> Box<dyn Store> {
    super::unavailable::misconfigured("the memory backend", admin::UNSUPPORTED.to_string())
}
