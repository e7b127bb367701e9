//! The keys the config file may set, and checking a value the same way for
//! the loader and for `cachier config set`.
use std::path::PathBuf;
use std::time::Duration;

use toml_edit::{Item, Value};

use crate::store::param;
use crate::store::registry::{self, BACKENDS, Backend, push_tier};
use crate::units::{duration_from_secs, parse_duration, parse_size, size_from_bytes};

/// What a key's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Backend,
    /// `[tiers.NAME]` tables: a tier's own stale_after and url.
    Tiers,
    Dir,
    Duration,
    Size,
    Bool,
    Text,
}

/// The keys every backend shares; each backend's own keys (`redis_url`,
/// ...) come from the registry, listed before `tiers`.
const COMMON: &[(&str, Kind)] = &[
    ("backend", Kind::Backend),
    ("cache_dir", Kind::Dir),
    ("stale_after", Kind::Duration),
    ("wait_for_calc_timeout", Kind::Duration),
    ("entry_size_limit", Kind::Size),
    ("max_size", Kind::Size),
    ("cleanup_stale", Kind::Bool),
    ("cleanup_interval", Kind::Duration),
    ("enabled", Kind::Bool),
    ("read_only", Kind::Bool),
    ("retry_after", Kind::Duration),
    ("signing_key_file", Kind::Dir),
    ("compression", Kind::Text),
    ("pool", Kind::Bool),
    ("watch", Kind::Bool),
];

/// Every key the file may set, in the order error messages list them.
pub fn keys() -> impl Iterator<Item = (&'static str, Kind)> {
    let backends = registry::params().map(|p| {
        let kind = match p.kind {
            param::Kind::Text => Kind::Text,
            param::Kind::Size => Kind::Size,
            param::Kind::Duration => Kind::Duration,
        };
        (p.key, kind)
    });
    COMMON
        .iter()
        .copied()
        .chain(backends)
        .chain([("tiers", Kind::Tiers)])
}

/// The key as the file names it (static), and what its value must be.
pub fn lookup(key: &str) -> Option<(&'static str, Kind)> {
    keys().find(|(k, _)| *k == key)
}

pub fn kind_of(key: &str) -> Option<Kind> {
    lookup(key).map(|(_, kind)| kind)
}

/// Why `key` is not a key, with a guess when it is one spelled with dashes,
/// else the `fix` given.
pub fn unknown_key(key: &str, fix: Option<&str>) -> String {
    let known: Vec<&str> = keys().map(|(k, _)| k).collect();
    let guess = key.replace('-', "_").to_ascii_lowercase();
    let hint = match (kind_of(&guess), fix) {
        (Some(_), _) => format!(" (did you mean `{guess}`?)"),
        (None, Some(fix)) => format!(" ({fix})"),
        (None, None) => String::new(),
    };
    format!(
        "unknown key `{key}`{hint}; known keys: {}",
        known.join(", ")
    )
}

/// A checked value.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    Backend(Vec<Backend>),
    Tiers(Vec<TierConf>),
    Dir(PathBuf),
    Duration(Duration),
    Size(u64),
    Bool(bool),
    Text(String),
}

/// One `[tiers.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct TierConf {
    pub backend: Backend,
    pub stale_after: Option<Duration>,
    pub url: Option<String>,
    /// The tier is read: hits served from it, nothing written to it.
    pub read_only: bool,
}

/// Checks a value the way every reader of the file does: the loader, and
/// `config set` before it writes.
pub fn check(kind: Kind, item: &Item) -> Result<Setting, String> {
    if kind == Kind::Tiers {
        return tiers(item).map(Setting::Tiers);
    }
    let Some(value) = item.as_value() else {
        return Err(format!("expected {}, found a table", kind.expected()));
    };
    match (kind, value) {
        (Kind::Backend, Value::String(s)) => Backend::parse_list(s.value()).map(Setting::Backend),
        (Kind::Backend, Value::Array(names)) => {
            if names.is_empty() {
                return Err(
                    "an empty list names no backend; write e.g. backend = [\"memory\", \"sql\"]"
                        .into(),
                );
            }
            let mut stack = Vec::new();
            for name in names.iter() {
                let Some(name) = name.as_str() else {
                    return Err(format!(
                        "expected backend names, found {}",
                        name.type_name()
                    ));
                };
                push_tier(&mut stack, Backend::parse(name)?)?;
            }
            Ok(Setting::Backend(stack))
        }
        (Kind::Dir, Value::String(s)) => dir(s.value()).map(Setting::Dir),
        (Kind::Duration, Value::String(s)) => parse_duration(s.value()).map(Setting::Duration),
        (Kind::Duration, Value::Integer(n)) => count(*n.value())
            .and_then(duration_from_secs)
            .map(Setting::Duration),
        (Kind::Size, Value::String(s)) => parse_size(s.value()).map(Setting::Size),
        (Kind::Size, Value::Integer(n)) => count(*n.value())
            .and_then(size_from_bytes)
            .map(Setting::Size),
        (Kind::Bool, Value::Boolean(b)) => Ok(Setting::Bool(*b.value())),
        (Kind::Text, Value::String(s)) if s.value().is_empty() => {
            Err("an empty string; unset the key instead".into())
        }
        (Kind::Text, Value::String(s)) => Ok(Setting::Text(s.value().clone())),
        (kind, other) => Err(format!(
            "expected {}, found {} {}",
            kind.expected(),
            other.type_name(),
            other.clone().decorated("", "")
        )),
    }
}

/// The `[tiers]` table: one sub-table per backend, each with `stale_after`
/// and (for server backends) `url`.
fn tiers(item: &Item) -> Result<Vec<TierConf>, String> {
    let Some(table) = item.as_table_like() else {
        return Err("expected tables such as [tiers.memory] with stale_after = \"5m\"".into());
    };
    let mut confs: Vec<TierConf> = Vec::new();
    for (name, sub) in table.iter() {
        let backend = Backend::parse(name).map_err(|e| format!("[tiers.{name}]: {e}"))?;
        if confs.iter().any(|c| c.backend == backend) {
            return Err(format!(
                "[tiers.{name}]: tier `{}` is configured twice",
                backend.name()
            ));
        }
        let Some(sub) = sub.as_table_like() else {
            return Err(format!(
                "tiers.{name}: expected a table such as [tiers.{name}]"
            ));
        };
        let mut conf = TierConf {
            backend,
            stale_after: None,
            url: None,
            read_only: false,
        };
        for (key, value) in sub.iter() {
            let setting = match key {
                "stale_after" => check(Kind::Duration, value),
                "url" if backend.tier_param("url").is_none() => Err(format!(
                    "the {} tier has no url (only {} tiers do)",
                    backend.name(),
                    with_url()
                )),
                "url" => check(Kind::Text, value),
                "read_only" => check(Kind::Bool, value),
                _ => Err("unknown key; a tier takes stale_after, url and read_only".to_string()),
            }
            .map_err(|e| format!("tiers.{name}.{key}: {e}"))?;
            match setting {
                Setting::Bool(b) => conf.read_only = b,
                Setting::Duration(d) => conf.stale_after = Some(d),
                Setting::Text(t) => conf.url = Some(t),
                _ => {}
            }
        }
        confs.push(conf);
    }
    Ok(confs)
}

/// `sql, redis and mongo`: the backends a tier may give a url.
fn with_url() -> String {
    let names: Vec<&str> = BACKENDS
        .iter()
        .filter(|d| d.params.iter().any(|p| p.tier_key == Some("url")))
        .map(|d| d.name)
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Backend => "a backend name such as \"file\", or a list of them",
            Kind::Tiers => "[tiers.NAME] tables",
            Kind::Dir => "a path such as \"~/.cache/cachier\"",
            Kind::Duration => "a duration such as \"1h\"",
            Kind::Size => "a size such as \"50M\"",
            Kind::Bool => "true or false",
            Kind::Text => "a string",
        }
    }
}

/// The value `config set KEY TEXT` stores: booleans as TOML booleans,
/// everything else as the string typed (so `1h` stays `1h`).
pub fn from_text(kind: Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Bool => parse_bool(text).map(Value::from),
        _ => Ok(Value::from(text)),
    }
}

/// `true`/`false` and the usual spellings of them, as in environment variables.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("`{text}` is not a boolean; write true or false")),
    }
}

fn count(n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("`{n}` is negative"))
}

/// An absolute path, or one under the home directory (`~/...`): a relative
/// one would mean a different cache in every working directory.
fn dir(text: &str) -> Result<PathBuf, String> {
    if let Some(rest) = text.strip_prefix("~/").or((text == "~").then_some("")) {
        return directories::BaseDirs::new()
            .map(|d| d.home_dir().join(rest))
            .ok_or_else(|| format!("`{text}` needs a home directory, and none was found"));
    }
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!(
            "`{text}` is a relative path; write an absolute one, or one starting with ~/"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(kind: Kind, toml: &str) -> Result<Setting, String> {
        let value: Value = toml.parse().map_err(|e| format!("{e}"))?;
        check(kind, &Item::Value(value))
    }

    #[test]
    fn values_of_each_kind() {
        let hour = Setting::Duration(Duration::from_secs(3600));
        assert_eq!(checked(Kind::Duration, "\"1h\""), Ok(hour.clone()));
        assert_eq!(checked(Kind::Duration, "3600"), Ok(hour));
        assert_eq!(checked(Kind::Size, "\"1K\""), Ok(Setting::Size(1024)));
        assert_eq!(
            checked(Kind::Backend, "[\"pickle\"]"),
            Ok(Setting::Backend(vec![Backend::parse("file").unwrap()]))
        );
        assert_eq!(
            checked(Kind::Dir, "\"/c\""),
            Ok(Setting::Dir(PathBuf::from("/c")))
        );
        assert_eq!(checked(Kind::Size, "-1"), Err("`-1` is negative".into()));
        assert_eq!(
            checked(Kind::Backend, "[\"memory\", \"sql\"]"),
            Ok(Setting::Backend(Backend::parse_list("memory,sql").unwrap()))
        );
        let err = checked(Kind::Backend, "[\"sql\", \"sql\"]").unwrap_err();
        assert_eq!(err, "backend `sql` is listed twice; name each tier once");
        let err = checked(Kind::Dir, "\"rel\"").unwrap_err();
        assert!(err.starts_with("`rel` is a relative path"), "{err}");
        let err = checked(Kind::Bool, "\"no\"").unwrap_err();
        assert_eq!(err, "expected true or false, found string \"no\"");
    }

    #[test]
    fn set_stores_booleans_as_booleans() {
        assert_eq!(
            from_text(Kind::Bool, "yes").map(|v| v.to_string()),
            Ok("true".into())
        );
        assert_eq!(
            from_text(Kind::Duration, "1h").map(|v| v.to_string()),
            Ok("\"1h\"".into())
        );
        assert!(from_text(Kind::Bool, "maybe").is_err());
    }
}
