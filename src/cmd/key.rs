//! `cachier key`: print the key a command line maps to; `--explain` shows every
//! component and, against the newest entry of the same argv, what differs.
use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use anyhow::Result;

use crate::cli::KeyCmdArgs;
use crate::key::{self, KEY_FORMAT};
use crate::settings::Settings;
use crate::store;

pub fn run(settings: &Settings, args: &KeyCmdArgs) -> Result<u8> {
    let material = key::derive(
        &super::key_spec(&args.key.opts, settings),
        &args.key.command,
    )?;
    let mut out = std::io::stdout().lock();
    if !args.explain {
        writeln!(out, "{}", material.key)?;
        return Ok(0);
    }
    writeln!(out, "key        {}", material.key)?;
    writeln!(out, "format     {KEY_FORMAT}")?;
    let width = material
        .components
        .iter()
        .map(|c| c.label.len())
        .max()
        .unwrap_or(0);
    for c in &material.components {
        writeln!(
            out,
            "{:width$}  {}  {}",
            c.label,
            key::short_hash(&c.hash),
            c.shown
        )?;
    }
    let entries = match store::open(settings).list(Some(&material.namespace)) {
        Ok(entries) => entries,
        Err(e) => {
            writeln!(out, "cannot read the cache to compare: {e:#}")?;
            return Ok(0);
        }
    };
    let argv = material.argv_hash();
    let newest = entries
        .into_iter()
        .filter(|m| {
            m.meta
                .components
                .iter()
                .any(|c| c.label == "argv" && Some(c.hash) == argv)
        })
        .max_by_key(|m| m.meta.created_ms);
    let Some(other) = newest.map(|l| l.meta) else {
        writeln!(
            out,
            "no entry for this command line in namespace `{}`: a run would miss",
            material.namespace
        )?;
        return Ok(0);
    };
    let age = crate::human::duration(other.age(SystemTime::now()));
    if other.key == material.key {
        writeln!(
            out,
            "an entry with this key exists (made {age} ago): a fresh run would hit"
        )?;
        return Ok(0);
    }
    let mine: BTreeMap<&str, &[u8; 32]> = material
        .components
        .iter()
        .map(|c| (c.label.as_str(), &c.hash))
        .collect();
    let theirs: BTreeMap<&str, &[u8; 32]> = other
        .components
        .iter()
        .map(|c| (c.label.as_str(), &c.hash))
        .collect();
    writeln!(
        out,
        "the newest entry for this command line ({}, made {age} ago) differs in:",
        other.key.short()
    )?;
    for (label, hash) in &mine {
        match theirs.get(label) {
            Some(h) if h == hash => {}
            Some(_) => writeln!(out, "  {label}: changed")?,
            None => writeln!(out, "  {label}: not in that entry")?,
        }
    }
    for label in theirs.keys().filter(|l| !mine.contains_key(*l)) {
        writeln!(out, "  {label}: only in that entry")?;
    }
    Ok(0)
}
