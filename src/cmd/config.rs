//! `cachier config get|set|unset|list`: read and edit the config file,
//! keeping its comments, layout and key order.
//!
//! Like `git config`: `get` of an unset key prints nothing and exits 1, and
//! `unset` of an absent key changes nothing and exits 0.
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use toml_edit::{DocumentMut, Item, Value};

use crate::cli::ConfigCmd;
use crate::config;
use crate::error::Exit;

pub fn run(cmd: &ConfigCmd) -> Result<u8> {
    match cmd {
        ConfigCmd::Get { key } => get(key),
        ConfigCmd::Set { key, value } => set(key, value),
        ConfigCmd::Unset { key } => unset(key),
        ConfigCmd::List => list(),
    }
}

/// The value alone, a string without its quotes, so `$(cachier config get
/// cache_dir)` is usable as is.
fn get(key: &str) -> Result<u8> {
    known(key)?;
    let file = ConfigFile::open()?;
    match file.doc.get(key) {
        Some(Item::Value(Value::String(s))) => print(&format!("{}\n", s.value())),
        Some(item) => print(&format!("{}\n", shown(item))),
        None => Ok(1),
    }
}

/// Checks the value as the loader would before touching the file: a bad
/// one is exit 2 and the file stays as it was.
fn set(key: &str, text: &str) -> Result<u8> {
    let kind = known(key)?;
    let value = config::from_text(kind, text)
        .and_then(|v| config::check(kind, &Item::Value(v.clone())).map(|_| v))
        .map_err(|e| Exit::usage(format!("{key}: {e}")))?;
    let mut file = ConfigFile::open()?;
    match file.doc.get_mut(key) {
        // Keep the spacing and a trailing `# comment` of the old value.
        Some(Item::Value(old)) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        Some(other) => *other = Item::Value(value),
        None => {
            file.doc.insert(key, Item::Value(value));
        }
    }
    file.save()?;
    Ok(0)
}

/// Any key present may be removed, unknown ones too: that is how a file
/// the loader rejects for an unknown key gets fixed.
fn unset(key: &str) -> Result<u8> {
    let mut file = ConfigFile::open()?;
    let table = file.doc.as_table();
    let Some(index) = table.iter().position(|(k, _)| k == key) else {
        known(key)?;
        return Ok(0);
    };
    let next = table.iter().nth(index + 1).map(|(k, _)| k.to_owned());
    let Some((removed, _)) = file.doc.remove_entry(key) else {
        return Ok(0);
    };
    // Comment lines above the key stay, on the key that follows (or at the
    // end): like `git config --unset`, only the setting goes.
    let above = removed
        .leaf_decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_owned();
    if above.contains('#') {
        match next.as_deref().and_then(|n| file.doc.key_mut(n)) {
            Some(mut next) => {
                let theirs = next.leaf_decor().prefix().and_then(|p| p.as_str());
                let joined = format!("{above}{}", theirs.unwrap_or_default());
                next.leaf_decor_mut().set_prefix(joined);
            }
            None => {
                let trailing = file.doc.trailing().as_str().unwrap_or_default().to_owned();
                file.doc.set_trailing(format!("{above}{trailing}"));
            }
        }
    }
    file.save()?;
    Ok(0)
}

/// `key = value` per setting, in file order; each line is valid TOML.
fn list() -> Result<u8> {
    let file = ConfigFile::open()?;
    let mut out = String::new();
    for (key, item) in file.doc.iter() {
        out.push_str(&format!("{key} = {}\n", shown(item)));
    }
    print(&out)
}

fn known(key: &str) -> Result<config::Kind> {
    config::kind_of(key).ok_or_else(|| Exit::usage(config::unknown_key(key, None)))
}

/// A value as TOML on one line, without the file's spacing or comments.
fn shown(item: &Item) -> String {
    let mut value = match item.clone() {
        Item::Value(v) => v,
        Item::Table(t) => Value::InlineTable(t.into_inline_table()),
        Item::ArrayOfTables(a) => Value::Array(a.into_array()),
        Item::None => return String::new(),
    };
    match &mut value {
        Value::Array(a) => a.fmt(),
        Value::InlineTable(t) => t.fmt(),
        _ => {}
    }
    value.decorated("", "").to_string()
}

/// Writes to stdout; a reader that went away is not an error.
fn print(text: &str) -> Result<u8> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

/// The config file as an editable document; empty when it does not exist.
struct ConfigFile {
    path: PathBuf,
    doc: DocumentMut,
}

impl ConfigFile {
    fn open() -> Result<ConfigFile> {
        let path = config::path().ok_or_else(|| {
            Exit::failed("cannot find a home directory for the config file; set CACHIER_CONFIG")
        })?;
        let doc = match config::read(&path)? {
            Some(text) => config::parse(&path, &text)?.into_mut(),
            None => DocumentMut::new(),
        };
        Ok(ConfigFile { path, doc })
    }

    /// Replaces the file in one rename, so a reader sees the old or the new
    /// file, never half of one. A new file is 0600 in a 0700 directory (it
    /// may hold server URLs with passwords); an existing one keeps its mode.
    fn save(&self) -> Result<()> {
        let fail = |e: std::io::Error| {
            Exit::failed(format!(
                "cannot write the config file {}: {e}",
                self.path.display()
            ))
        };
        // A symlinked file (a dotfiles checkout) is edited where it lives.
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.toml.")
            .tempfile_in(dir)
            .map_err(fail)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            let mode = meta.permissions().mode() & 0o7777;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(fail)?;
        }
        tmp.write_all(self.doc.to_string().as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(fail)?;
        tmp.persist(&target).map_err(|e| fail(e.error))?;
        Ok(())
    }
}
