//! `cachier show KEY`: an entry's metadata, or its stdout or stderr byte for byte.
use std::io::Write;
use std::time::SystemTime;

use anyhow::Result;
use serde_json::json;

use super::select;
use crate::cli::ShowArgs;
use crate::entry::Stream;
use crate::error::{BROKEN_PIPE, Exit};
use crate::human;
use crate::key;
use crate::replay;
use crate::settings::Settings;
use crate::store;

pub fn run(settings: &Settings, args: &ShowArgs) -> Result<u8> {
    let store = store::open(settings);
    let entries = store.list(None)?;
    let Some(listed) = select::by_prefix(&entries, &args.key)? else {
        return Err(Exit::usage(format!(
            "no entry has a key starting with `{}` (see `cachier ls`)",
            args.key
        )));
    };
    let meta = listed.meta;
    let stream = match (args.stdout, args.stderr) {
        (true, _) => Some(Stream::Stdout),
        (_, true) => Some(Stream::Stderr),
        _ => None,
    };
    if let Some(stream) = stream {
        let found = store
            .get(&meta.key)?
            .ok_or_else(|| Exit::failed("the entry went away; run `cachier ls`"))?;
        let body = found.body.fetch()?;
        body.verify(&found.meta)?;
        return Ok(match replay::send_stream(&found.meta, &body, stream)? {
            replay::Replayed::Done => 0,
            replay::Replayed::StdoutClosed => BROKEN_PIPE,
        });
    }
    if args.outputs {
        return outputs(&store, &meta.key, args.json);
    }
    let mut out = std::io::stdout().lock();
    let argv: Vec<String> = meta
        .argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let components: Vec<_> = meta
        .components
        .iter()
        .map(|c| json!({ "label": c.label, "hash": blake3::Hash::from_bytes(c.hash).to_hex().to_string() }))
        .collect();
    if args.json {
        let value = json!({
            "key": meta.key.hex(),
            "namespace": meta.namespace,
            "argv": argv,
            "exit_code": meta.exit_code,
            "stdout_bytes": meta.stdout_len,
            "stderr_bytes": meta.stderr_len,
            "runs": meta.runs.len(),
            "duration_ms": meta.duration_ms,
            "created_ms": meta.created_ms,
            "host": meta.host,
            "pid": meta.pid,
            "user": meta.user,
            "hits": listed.hits,
            "signed_by": crate::sign::signed_by(&meta),
            "size": listed.size,
            "components": components,
            "stdout_blake3": blake3::Hash::from_bytes(meta.stdout_blake3).to_hex().to_string(),
            "stderr_blake3": blake3::Hash::from_bytes(meta.stderr_blake3).to_hex().to_string(),
            "outputs": meta.outputs.count,
            "outputs_size": meta.outputs.size,
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(0);
    }
    let age = human::duration(meta.age(SystemTime::now()));
    writeln!(out, "key        {}", meta.key)?;
    writeln!(out, "namespace  {}", meta.namespace)?;
    writeln!(out, "command    {}", argv.join(" "))?;
    writeln!(out, "exit code  {}", meta.exit_code)?;
    writeln!(
        out,
        "output     {} stdout, {} stderr",
        human::bytes(meta.stdout_len),
        human::bytes(meta.stderr_len)
    )?;
    writeln!(
        out,
        "made       {age} ago by {}@{} pid {}, ran {}",
        meta.user,
        meta.host,
        meta.pid,
        human::duration(meta.duration())
    )?;
    if meta.outputs.count > 0 {
        writeln!(
            out,
            "files      {} ({}; `show --outputs` lists them)",
            meta.outputs.count,
            human::bytes(meta.outputs.size)
        )?;
    }
    writeln!(out, "hits       {}", listed.hits)?;
    let signed = match (&meta.seal, crate::sign::signed_by(&meta)) {
        (_, Some(by)) => by,
        (Some(_), None) => "badly signed (its signature does not match it)".into(),
        (None, None) => "not signed".into(),
    };
    writeln!(out, "signed by  {signed}")?;
    for c in &meta.components {
        writeln!(out, "  {:20} {}", c.label, key::short_hash(&c.hash))?;
    }
    Ok(0)
}

/// `show --outputs`: each stored file's mode, size and path (a tab
/// between; the path's bytes as stored), or a JSON list (each path as
/// [`bytes_json`]).
fn outputs(store: &store::Opened, key: &key::Key, json: bool) -> Result<u8> {
    let found = store
        .get(key)?
        .ok_or_else(|| Exit::failed("the entry went away; run `cachier ls`"))?;
    let body = found.body.fetch()?;
    body.verify(&found.meta)?;
    let records =
        crate::outputs::list(&found.meta, &body).map_err(|bad| crate::entry::Corrupt {
            key: key.short(),
            why: bad.0,
        })?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let items: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "path": bytes_json(&r.path),
                    "kind": r.kind.name(),
                    "size": r.len,
                    "mode": format!("{:o}", r.mode),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &items)?;
        writeln!(out)?;
    } else {
        for r in &records {
            write!(out, "{} {:o}\t{}\t", r.kind.name(), r.mode, r.len)?;
            out.write_all(&r.path)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(0)
}

/// Bytes for a JSON consumer, losslessly, as ripgrep's `--json` gives them:
/// `{"text": "..."}` when they are UTF-8, else `{"bytes": "<base64>"}`.
fn bytes_json(bytes: &[u8]) -> serde_json::Value {
    use base64::Engine;
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}
