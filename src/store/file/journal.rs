//! Counters without a lock on every hit: an append-only journal per namespace.
//!
//! Each event is one 16-byte record written with `O_APPEND`, which the
//! kernel keeps whole between processes: `[kind, 0 x 7][saved ms: u64 LE]`.
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::entry::Event;

pub const RECORD: usize = 16;

pub fn append(dir: &Path, namespace: &str, event: Event) -> std::io::Result<()> {
    let (kind, saved) = match event {
        Event::Hit { saved } => (1u8, saved.as_millis() as u64),
        Event::Miss => (2, 0),
        Event::Wait => (3, 0),
        Event::StaleServe => (4, 0),
    };
    let mut record = [0u8; RECORD];
    record[0] = kind;
    record[8..].copy_from_slice(&saved.to_le_bytes());
    let path = path_for(dir, namespace);
    let open = || {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
    };
    let mut file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            super::make_dir(dir)?;
            open()?
        }
        other => other?,
    };
    file.write_all(&record)
}

/// The journal of a namespace: its name with unsafe bytes escaped as `%XX`.
pub fn path_for(dir: &Path, namespace: &str) -> PathBuf {
    let mut name = String::with_capacity(namespace.len() + 4);
    for b in namespace.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.') && !(name.is_empty() && b == b'.')
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
