//! Counters without a lock on every hit: an append-only journal per
//! namespace, for the local stores (`file`, and SQLite, whose hits then
//! write nothing to the database).
//!
//! Each event is one 24-byte record written with `O_APPEND`, which the
//! kernel keeps whole between processes:
//! `[kind: u8][time: 7 bytes][key prefix: 8 bytes][value: u64 LE]`, the
//! time (a hit's, in ms since the epoch, LE; 0 in older records) where the
//! first format had zeros. Folding a journal gives the namespace's counters
//! and each entry's hits and last hit.
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::entry::Event;
use crate::key::Key;
use crate::store::Counters;

const RECORD: usize = 24;

/// What a journal record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    Hit {
        saved_ms: u64,
    },
    Miss,
    Wait,
    StaleServe,
    Stored {
        bytes: u64,
    },
    Removed {
        bytes: u64,
    },
    /// `stats --reset`: the event counters restart from zero.
    Reset,
}

impl From<Event> for Note {
    fn from(event: Event) -> Note {
        match event {
            Event::Hit { saved } => Note::Hit {
                saved_ms: saved.as_millis() as u64,
            },
            Event::Miss => Note::Miss,
            Event::Wait => Note::Wait,
            Event::StaleServe => Note::StaleServe,
        }
    }
}

impl Note {
    fn encode(self) -> (u8, u64) {
        match self {
            Note::Hit { saved_ms } => (1, saved_ms),
            Note::Miss => (2, 0),
            Note::Wait => (3, 0),
            Note::StaleServe => (4, 0),
            Note::Stored { bytes } => (5, bytes),
            Note::Removed { bytes } => (6, bytes),
            Note::Reset => (7, 0),
        }
    }
}

pub fn append(dir: &Path, namespace: &str, key: &Key, note: Note) -> io::Result<()> {
    let (kind, value) = note.encode();
    let mut record = [0u8; RECORD];
    record[0] = kind;
    if let Note::Hit { .. } = note {
        let at = crate::entry::now_ms().to_le_bytes();
        record[1..8].copy_from_slice(&at[..7]);
    }
    record[8..16].copy_from_slice(&key.0[..8]);
    record[16..].copy_from_slice(&value.to_le_bytes());
    let path = path_for(dir, namespace);
    let open = || {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
    };
    let mut file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            super::kit::make_dir(dir)?;
            open()?
        }
        other => other?,
    };
    file.write_all(&record)
}

/// A folded journal: the counters and each entry's hits (by key prefix).
#[derive(Default)]
pub struct Folded {
    pub counters: Counters,
    pub hits: HashMap<[u8; 8], u64>,
    /// Each entry's last hit (ms since the epoch) the journal knows of.
    pub last_hit: HashMap<[u8; 8], u64>,
}

/// `stats --reset`: a Reset record in every namespace's journal under `dir`.
pub fn reset(dir: &Path) -> io::Result<()> {
    for (ns, _) in all(dir)? {
        append(dir, &ns, &Key([0; 32]), Note::Reset)?;
    }
    Ok(())
}

pub fn fold(path: &Path) -> io::Result<Folded> {
    let mut out = Folded::default();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; RECORD * 4096];
    let mut filled = 0;
    loop {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
        let whole = filled - filled % RECORD;
        for record in buf[..whole].chunks_exact(RECORD) {
            apply(&mut out, record);
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    Ok(out)
}

fn apply(out: &mut Folded, record: &[u8]) {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&record[8..16]);
    let mut value = [0u8; 8];
    value.copy_from_slice(&record[16..]);
    let value = u64::from_le_bytes(value);
    let c = &mut out.counters;
    match record[0] {
        1 => {
            c.hits += 1;
            c.saved_ms += value;
            *out.hits.entry(prefix).or_default() += 1;
            let mut at = [0u8; 8];
            at[..7].copy_from_slice(&record[1..8]);
            let at = u64::from_le_bytes(at);
            if at > 0 {
                let last = out.last_hit.entry(prefix).or_default();
                *last = (*last).max(at);
            }
        }
        2 => c.misses += 1,
        3 => c.waits += 1,
        4 => c.stale_serves += 1,
        5 => {
            c.entries += 1;
            c.bytes += value;
        }
        6 => {
            c.entries = c.entries.saturating_sub(1);
            c.bytes = c.bytes.saturating_sub(value);
        }
        7 => {
            *c = Counters {
                entries: c.entries,
                bytes: c.bytes,
                ..Counters::default()
            };
            out.hits.clear();
        }
        _ => {}
    }
}

/// Every journal in `dir`, with the namespace each belongs to.
pub fn all(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".log") {
            out.push((unescape(stem), path));
        }
    }
    out.sort();
    Ok(out)
}

/// The journal of a namespace: its name with unsafe bytes escaped as `%XX`.
pub fn path_for(dir: &Path, namespace: &str) -> PathBuf {
    let mut name = String::with_capacity(namespace.len() + 4);
    for b in namespace.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') || (b == b'.' && !name.is_empty())
        {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.len() > 200 {
        let hash = blake3::hash(namespace.as_bytes()).to_hex();
        name.truncate(180);
        name.push('~');
        name.push_str(&hash[..16]);
    }
    name.push_str(".log");
    dir.join(name)
}

fn unescape(stem: &str) -> String {
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = stem
            .get(i + 1..i + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let (b'%', Some(b)) = (bytes[i], escaped) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for ns in ["curl", "my tool", ".hidden", "a/b%c", "ünï"] {
            let path = path_for(Path::new("/x"), ns);
            let stem = path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_suffix(".log")
                .unwrap();
            assert_eq!(unescape(stem), ns);
        }
    }
}
