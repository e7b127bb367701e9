//! Whether a store honours conditional writes (some S3-compatible stores
//! ignore `If-None-Match`): probed on an object of its own before the
//! first claim, two PUTs with `If-None-Match: *` whose second must fail.
//! The answer is remembered for a day in the cache dir
//! (`s3-probes/<hash of the place>`), so a miss does not pay three
//! requests each run. A store that ignores them gets one warning and no
//! single-flight. A read-only store probes nothing: it never claims, it
//! only waits on others' claims, which needs no answer.
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use rusty_s3::actions::PutObject;

use super::conn::{Header, sign};
use super::store::{Inner, delete};

/// How long a probe's answer is trusted.
const REMEMBER: Duration = Duration::from_secs(24 * 3600);

pub fn conditional(store: &Inner) -> Result<bool> {
    if let Some(known) = store.conditional.get() {
        return Ok(known);
    }
    if store.lazy.config().read_only {
        return Ok(true);
    }
    let note = note(store);
    let honoured = match remembered(&note) {
        Some(known) => known,
        None => {
            let honoured = probe(store)?;
            remember(&note, honoured);
            honoured
        }
    };
    if !honoured {
        crate::warn::once(&format!(
            "S3 at {} ignores conditional writes (If-None-Match): single-flight is off for it",
            store.lazy.config().place()
        ));
    }
    store.conditional.set(Some(honoured));
    Ok(honoured)
}

fn probe(store: &Inner) -> Result<bool> {
    let name = store.names.probe(crate::store::kit::random_u64());
    store.lazy.with(|c| {
        let headers: [Header; 1] = [("if-none-match", "*".into())];
        let url = sign(PutObject::new(&c.bucket, Some(&c.creds), &name), &headers);
        let mut first = c.send("PUT", &url, &headers, b"1")?;
        if !first.ok() {
            return Err(c.refused("store an object", &mut first));
        }
        let second = c.send("PUT", &url, &headers, b"2")?;
        let _ = delete(c, &name);
        Ok(matches!(second.status, 412 | 409))
    })
}

fn note(store: &Inner) -> PathBuf {
    let config = store.lazy.config();
    let hash = blake3::hash(config.place().as_bytes()).to_hex();
    config.notes.join("s3-probes").join(&hash[..16])
}

/// The answer noted less than [`REMEMBER`] ago, if any.
fn remembered(note: &PathBuf) -> Option<bool> {
    let age = std::fs::metadata(note)
        .ok()?
        .modified()
        .ok()?
        .elapsed()
        .ok()?;
    if age > REMEMBER {
        return None;
    }
    match std::fs::read(note).ok()?.as_slice() {
        b"yes" => Some(true),
        b"no" => Some(false),
        _ => None,
    }
}

/// Note the answer (best effort: a read-only cache dir just probes again).
fn remember(note: &PathBuf, honoured: bool) {
    let Some(dir) = note.parent() else { return };
    if crate::store::kit::make_dir(dir).is_err() {
        return;
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(note)
    {
        let _ = f.write_all(if honoured { b"yes" } else { b"no" });
    }
}
