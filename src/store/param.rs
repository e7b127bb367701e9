//! A backend's own settings as data: each declares its flag, variable and
//! config key here, and gets back a [`Section`] of the values given, whose
//! defaults and validation are the backend's own.
use std::path::PathBuf;
use std::time::Duration;

/// One setting a backend reads.
pub struct Param {
    /// The config file key (`redis_url`); also the id of its flag.
    pub key: &'static str,
    /// Its environment variable (`CACHIER_REDIS_URL`).
    pub var: &'static str,
    /// Its global flag without dashes (`redis-url`), if it has one.
    pub flag: Option<&'static str>,
    /// The key under `[tiers.NAME]` that sets it for one tier (`url`).
    pub tier_key: Option<&'static str>,
    pub kind: Kind,
    /// The flag's value name and help line (with its variable and default).
    pub value_name: &'static str,
    pub help: &'static str,
}

/// What a value must be; flags, variables and the file are checked alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Size,
    Duration,
}

/// A checked value of a [`Param`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Size(u64),
    Duration(Duration),
}

impl Value {
    /// The value as a variable would give it to a child cachier.
    pub fn to_env(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::Size(n) => n.to_string(),
            Value::Duration(d) => format!("{}ms", d.as_millis()),
        }
    }
}

/// A value and where it came from (`--redis-url`, `CACHIER_REDIS_URL`, the
/// config file), for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Given {
    pub key: &'static str,
    pub var: &'static str,
    pub value: Value,
    pub from: String,
}

/// The values given for one backend's params, highest layer first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    pub given: Vec<Given>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&Given> {
        self.given.iter().find(|g| g.key == key)
    }

    /// A text value, and where it came from.
    pub fn text(&self, key: &str) -> Option<(&str, &str)> {
        match self.get(key)? {
            Given {
                value: Value::Text(t),
                from,
                ..
            } => Some((t, from)),
            _ => None,
        }
    }

    pub fn size(&self, key: &str) -> Option<u64> {
        match self.get(key)?.value {
            Value::Size(n) => Some(n),
            _ => None,
        }
    }

    pub fn duration(&self, key: &str) -> Option<Duration> {
        match self.get(key)?.value {
            Value::Duration(d) => Some(d),
            _ => None,
        }
    }
}

/// What every backend may need besides its own section.
#[derive(Debug, Clone)]
pub struct Common {
    /// The file store's directory; the default home of local databases.
    pub cache_dir: PathBuf,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // the memory daemon is Linux-only
    pub verbose: bool,
    /// The freshness bound entries are written with: servers expire them
    /// some time past it (Redis, MongoDB).
    pub stale_after: Option<Duration>,
    /// Read-only: the store creates no schema or index (a missing one is
    /// a miss), as credentials that can only read would refuse it.
    pub read_only: bool,
    /// How bodies sent to a server are encoded (config `compression`).
    pub compression: crate::entry::Encoding,
}
