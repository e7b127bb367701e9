//! The one list of backends this build knows. Adding a backend is its
//! folder under `store/`, one line in [`BACKENDS`], one test line and its
//! server script: flags, variables, config keys and tier claims follow.
use std::fmt;

use super::Store;
use super::param::{Common, Param, Section};

/// Everything the rest of cachier knows about one backend.
pub struct Def {
    pub name: &'static str,
    /// Other names accepted for it (`pickle`, as Python cachier calls it).
    pub aliases: &'static [&'static str],
    /// How widely it is shared: a stack claims a key on its most shared
    /// tier, so a fleet runs the command once (memory 0 … servers 3).
    pub reach: u8,
    /// Its own settings: flags, variables and config keys.
    pub params: &'static [Param],
    /// Whether its section is usable: a bad URL is a usage error, found
    /// before anything runs.
    pub check: fn(&Section, &Common) -> Result<(), String>,
    /// The store, cheaply: nothing connects until it is used.
    pub open: fn(&Section, &Common) -> Box<dyn Store>,
    /// Whether a store of these settings talks to a server whose
    /// connections the daemon may keep between runs (`store/pool`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // the daemon is Linux-only
    pub pooled: fn(&Section) -> bool,
}

/// Every backend, in the order help and messages list them.
pub static BACKENDS: [&Def; 6] = [
    &super::file::DEF,
    &super::sql::DEF,
    &super::redis::DEF,
    &super::mongo::DEF,
    &super::s3::DEF,
    &super::memory::DEF,
];

/// A backend, by its entry in [`BACKENDS`].
#[derive(Clone, Copy)]
pub struct Backend(&'static Def);

impl PartialEq for Backend {
    fn eq(&self, other: &Backend) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Backend {}

/// The first backend listed: `file`.
impl Default for Backend {
    fn default() -> Backend {
        Backend(BACKENDS[0])
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Backend {
    pub fn of(def: &'static Def) -> Backend {
        Backend(def)
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    pub fn def(self) -> &'static Def {
        self.0
    }

    pub fn reach(self) -> u8 {
        self.0.reach
    }

    /// The backend called `name` (or one of its aliases).
    pub fn parse(name: &str) -> Result<Backend, String> {
        let name = name.trim();
        BACKENDS
            .iter()
            .find(|d| d.name == name || d.aliases.contains(&name))
            .map(|d| Backend(d))
            .ok_or_else(|| format!("unknown backend `{name}`; choose one of: {}", names()))
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

    /// The key under `[tiers.NAME]` that sets `param` for this tier.
    pub fn tier_param(self, tier_key: &str) -> Option<&'static Param> {
        self.0.params.iter().find(|p| p.tier_key == Some(tier_key))
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

/// `file (alias pickle), sql, ...` for messages.
pub fn names() -> String {
    BACKENDS
        .iter()
        .map(|d| match d.aliases.first() {
            Some(alias) => format!("{} (alias {alias})", d.name),
            None => d.name.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every backend's params, in registry order.
pub fn params() -> impl Iterator<Item = &'static Param> {
    BACKENDS.iter().flat_map(|d| d.params.iter())
}
