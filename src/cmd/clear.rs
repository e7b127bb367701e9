//! `cachier clear`: remove everything, what matches the filters, or the
//! entry one command line would hit; report how many entries and bytes went.
use std::time::SystemTime;

use std::io::Write;

use anyhow::Result;

use super::select;
use crate::cli::ClearArgs;
use crate::error::Exit;
use crate::human;
use crate::key;
use crate::settings::Settings;
use crate::store::{self, Listed};

pub fn run(settings: &Settings, args: &ClearArgs) -> Result<u8> {
    let store = store::open(settings);
    let mut notes = Vec::new();
    if args.being_calculated {
        let wiped = store.clear_claims()?;
        notes.push(format!("wiped {wiped} leftover claim{}", plural(wiped)));
    }
    let chosen = if !args.command.is_empty() {
        let material = key::derive(&args.opts, &args.command)?;
        store
            .list(Some(&material.namespace))?
            .into_iter()
            .filter(|l| l.meta.key == material.key)
            .collect()
    } else if args.being_calculated && !filtered(args) {
        Vec::new()
    } else {
        select(&store.list(args.opts.name.as_deref())?, settings, args)?
    };
    let bar = human::progress(chosen.len() as u64, "clearing");
    let (mut entries, mut bytes) = (0u64, 0u64);
    for listed in &chosen {
        let freed = store.remove(&listed.meta.key, &listed.meta.namespace)?;
        if freed > 0 {
            entries += 1;
            bytes += freed;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut line = format!(
        "removed {entries} entr{} ({})",
        if entries == 1 { "y" } else { "ies" },
        human::bytes(bytes)
    );
    for note in notes {
        line.push_str(&format!("; {note}"));
    }
    writeln!(std::io::stdout(), "{line}")?;
    Ok(0)
}

fn filtered(args: &ClearArgs) -> bool {
    args.opts.name.is_some()
        || !args.opts.extra.is_empty()
        || args.stale
        || args.older_than.is_some()
}

fn select(all: &[Listed], settings: &Settings, args: &ClearArgs) -> Result<Vec<Listed>> {
    let mut chosen: Vec<Listed> = if args.opts.extra.is_empty() {
        all.to_vec()
    } else {
        let mut picked = Vec::new();
        for prefix in &args.opts.extra {
            picked.extend(select::by_prefix(all, prefix)?);
        }
        picked
    };
    let bound = if args.stale {
        let Some(stale_after) = args.stale_after.or(settings.stale_after) else {
            return Err(Exit::usage(
                "--stale needs a freshness bound: pass --stale-after DUR, set CACHIER_STALE_AFTER, or use --older-than DUR",
            ));
        };
        Some(stale_after)
    } else {
        args.older_than
    };
    if let Some(bound) = bound {
        let now = SystemTime::now();
        chosen.retain(|l| l.meta.age(now) > bound);
    }
    Ok(chosen)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
