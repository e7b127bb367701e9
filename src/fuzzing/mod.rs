//! Entry points for the fuzz targets in `fuzz/`, not an API: each feeds
//! arbitrary bytes to one real decoder, does with the result what its
//! callers do, and drops it. No input may panic cachier, so a panic here is
//! a bug.
mod reseal;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::{self, FileLayer, keys};
use crate::dump;
use crate::entry::{Body, Meta};
use crate::key::Key;
use crate::store::file::format;
#[cfg(target_os = "linux")]
use crate::store::memory::daemon::proto::{self, Req, Resp};
use crate::{human, units};

/// A stored entry as every store decodes it: `data` is the key looked up
/// (32 bytes) and then the stored bytes, read both as the metadata a
/// server store keeps beside the body and as a whole entry file.
pub fn entry_meta(data: &[u8]) {
    let Some((key, stored)) = data.split_first_chunk::<32>() else {
        return;
    };
    let key = Key(*key);
    if let Ok(meta) = Meta::decode(stored, &key) {
        use_meta(&meta);
    }
    let Ok(mut file) = tempfile::tempfile() else {
        return;
    };
    if file.write_all(stored).is_err() {
        return;
    }
    if let Ok(meta) = format::read_meta(&file, stored.len() as u64, &key) {
        use_meta(&meta);
        let body = Body { file, start: 0 };
        let _ = body.verify(&meta);
    }
}

/// The arithmetic the stores and the replay do on decoded metadata.
fn use_meta(meta: &Meta) {
    let body = meta.stdout_len + meta.stderr_len;
    let mut pos = [0, meta.stdout_len];
    for run in &meta.runs {
        let i = run.stream as usize;
        let end = pos[i] + run.len;
        pos[i] = end;
    }
    let _ = (body, meta.age(SystemTime::now()), meta.duration());
    let _ = (human::bytes(body), human::duration(meta.duration()));
}

/// An export stream, read to its end as `cachier import` does: once as
/// given, and once with its checksums made right, so that mutations also
/// reach the metadata and the output behind them.
pub fn dump_stream(data: &[u8]) {
    drain(data);
    drain(&reseal::reseal(data));
}

fn drain(bytes: &[u8]) {
    let Ok(mut reader) = dump::Reader::open(bytes) else {
        return;
    };
    while let Ok(Some(meta)) = reader.next_entry() {
        use_meta(&meta);
        loop {
            match reader.chunk() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// A config file as the loader reads it, and each line of `data` as the
/// value of every key as `cachier config set KEY VALUE` checks it.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(layer) = FileLayer::from_text(Path::new("fuzz.toml"), text) {
        for (key, _) in keys() {
            let _ = (layer.dir(key), layer.flag(key), layer.text(key));
            if let Some(d) = layer.duration(key) {
                use_duration(d);
            }
            if let Some(n) = layer.size(key) {
                let _ = human::bytes(n);
            }
        }
        let _ = (layer.backend(), layer.tiers());
    }
    for line in text.lines().take(8) {
        for (_, kind) in keys() {
            if let Ok(value) = config::from_text(kind, line) {
                let _ = config::check(kind, &toml_edit::Item::Value(value));
            }
        }
    }
}

/// Durations and sizes as typed on the command line or in the config file.
pub fn units(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = units::parse_duration(text) {
        use_duration(d);
    }
    if let Ok(n) = units::parse_size(text) {
        let _ = human::bytes(n);
    }
    let _ = config::parse_bool(text);
}

/// What cachier prints of a duration it accepted.
fn use_duration(d: Duration) {
    let _ = human::duration(d);
}

/// A stream of memory daemon frames, read to its end both as requests (the
/// daemon's side) and as responses (the client's side). (The daemon is
/// Linux-only.)
#[cfg(target_os = "linux")]
pub fn daemon_frames(data: &[u8]) {
    let mut buf = Vec::new();
    let mut input = data;
    while let Ok(Some(_)) = proto::recv::<Req>(&mut input, &mut buf) {}
    let mut input = data;
    while let Ok(Some(_)) = proto::recv::<Resp>(&mut input, &mut buf) {}
}
