//! The config file: where it lives, and reading it with every error
//! pointing at `file:line`. Its keys are in `keys`.
mod keys;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use toml_edit::Document;

use crate::error::Exit;
use crate::settings::Backend;

pub use keys::{
    Kind, Setting, TierConf, check, from_text, keys, kind_of, lookup, parse_bool, unknown_key,
};

/// The config file: `CACHIER_CONFIG`, else `cachier/config.toml` in the
/// user's config directory (`$XDG_CONFIG_HOME`, else `~/.config`).
pub fn path() -> Option<PathBuf> {
    match std::env::var_os("CACHIER_CONFIG").filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            directories::BaseDirs::new().map(|d| d.config_dir().join("cachier").join("config.toml"))
        }
    }
}

/// The file's text, or `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Exit::failed(format!(
            "cannot read the config file {}: {e} (fix it, or point CACHIER_CONFIG elsewhere)",
            path.display()
        ))),
    }
}

/// Parses the file as TOML; a syntax error names `file:line`.
pub fn parse(path: &Path, text: &str) -> Result<Document<String>> {
    Document::parse(text.to_owned()).map_err(|e| {
        let message: Vec<&str> = e.message().lines().filter(|l| !l.is_empty()).collect();
        at(
            path,
            text,
            e.span(),
            &format!("not valid TOML: {}", message.join("; ")),
        )
    })
}

/// The error for something wrong at byte offset `span.start` of the file.
pub fn at(
    path: &Path,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> anyhow::Error {
    let line = span.map_or(1, |s| {
        let upto = text.get(..s.start).unwrap_or(text);
        upto.bytes().filter(|&b| b == b'\n').count() + 1
    });
    Exit::failed(format!("{}:{line}: {message}", path.display()))
}

/// The file's layer of the settings: every key it sets, checked.
#[derive(Debug, Default)]
pub struct FileLayer {
    values: Vec<(&'static str, Setting)>,
}

impl FileLayer {
    /// Reads and checks the whole file; a missing file sets nothing. One bad
    /// key fails the lot, even one a flag overrides: the file is wrong either way.
    pub fn load() -> Result<FileLayer> {
        let Some(path) = path() else {
            return Ok(FileLayer::default());
        };
        match read(&path)? {
            None => Ok(FileLayer::default()),
            Some(text) => FileLayer::from_text(&path, &text),
        }
    }

    pub(crate) fn from_text(path: &Path, text: &str) -> Result<FileLayer> {
        let doc = parse(path, text)?;
        let table = doc.as_table();
        let mut values = Vec::new();
        for (key, item) in table.iter() {
            let key_span = table.key(key).and_then(|k| k.span());
            let Some((name, kind)) = lookup(key) else {
                let fix = format!("remove it: cachier config unset {key}");
                return Err(at(path, text, key_span, &unknown_key(key, Some(&fix))));
            };
            let setting = check(kind, item)
                .map_err(|e| at(path, text, item.span().or(key_span), &format!("{key}: {e}")))?;
            values.push((name, setting));
        }
        Ok(FileLayer { values })
    }

    fn get(&self, key: &str) -> Option<&Setting> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn backend(&self) -> Option<Vec<Backend>> {
        match self.get("backend") {
            Some(Setting::Backend(b)) => Some(b.clone()),
            _ => None,
        }
    }

    /// The `[tiers.NAME]` tables, if any.
    pub fn tiers(&self) -> Vec<TierConf> {
        match self.get("tiers") {
            Some(Setting::Tiers(t)) => t.clone(),
            _ => Vec::new(),
        }
    }

    pub fn dir(&self, key: &str) -> Option<PathBuf> {
        match self.get(key) {
            Some(Setting::Dir(d)) => Some(d.clone()),
            _ => None,
        }
    }

    pub fn duration(&self, key: &str) -> Option<Duration> {
        match self.get(key) {
            Some(Setting::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    pub fn size(&self, key: &str) -> Option<u64> {
        match self.get(key) {
            Some(Setting::Size(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Setting::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn text(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(Setting::Text(t)) => Some(t.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<FileLayer, String> {
        FileLayer::from_text(Path::new("c.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_every_kind() {
        let layer = load(
            "# comment\nbackend = [\"pickle\"]\nstale_after = \"1h\"\nmax_size = 4096\n\
             cleanup_stale = true\ncache_dir = \"/c\"\nredis_url = \"redis://h\"\n",
        )
        .unwrap();
        assert_eq!(layer.backend(), Some(vec![Backend::parse("file").unwrap()]));
        assert_eq!(
            layer.duration("stale_after"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(layer.size("max_size"), Some(4096));
        assert_eq!(layer.flag("cleanup_stale"), Some(true));
        assert_eq!(layer.dir("cache_dir"), Some(PathBuf::from("/c")));
        assert_eq!(layer.text("redis_url").as_deref(), Some("redis://h"));
        assert_eq!(layer.flag("enabled"), None);
    }

    #[test]
    fn errors_name_the_line() {
        let err = load("\n\nstale_after = \"5x\"\n").unwrap_err();
        assert!(
            err.starts_with("c.toml:3: stale_after: `5x` is not a duration"),
            "{err}"
        );
        let err = load("enabled = true\nenabled = false\n").unwrap_err();
        assert!(err.starts_with("c.toml:2: not valid TOML: "), "{err}");
        let err = load("\nx = 1\n").unwrap_err();
        let want =
            "c.toml:2: unknown key `x` (remove it: cachier config unset x); known keys: backend,";
        assert!(err.starts_with(want), "{err}");
        let err = load("stale-after = \"1h\"\n").unwrap_err();
        assert!(err.contains("(did you mean `stale_after`?)"), "{err}");
        let err = load("enabled = \"no\"\n").unwrap_err();
        assert_eq!(
            err,
            "c.toml:1: enabled: expected true or false, found string \"no\""
        );
    }
}
