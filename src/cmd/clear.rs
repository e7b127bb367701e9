//! `cachier clear`: remove everything, what matches the filters, or the
//! entry one command line would hit; report how many entries and bytes went.
use std::time::SystemTime;

use std::io::Write;

use anyhow::Result;

use super::{Held, select};
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
    let chosen: Vec<Held> = if !args.command.is_empty() {
        let material = key::derive(&super::key_spec(&args.opts), &args.command)?;
        super::held(&store, Some(&material.namespace))?
            .into_iter()
            .filter(|h| h.listed.meta.key == material.key)
            .collect()
    } else if args.being_calculated && !filtered(args) {
        Vec::new()
    } else {
        select(
            super::held(&store, args.opts.name.as_deref())?,
            settings,
            args,
        )?
    };
    let bar = human::progress(chosen.len() as u64, "clearing");
    let (mut entries, mut bytes) = (0u64, 0u64);
    // Per tier of a stack: entries and bytes removed there.
    let mut per_tier: Vec<(&str, u64, u64)> =
        store.tiers().iter().map(|(n, _)| (*n, 0, 0)).collect();
    for held in &chosen {
        let (key, ns) = (&held.listed.meta.key, &held.listed.meta.namespace);
        let freed = if per_tier.is_empty() {
            store.remove(key, ns)?
        } else {
            let mut freed = 0;
            for (name, n, b) in per_tier.iter_mut() {
                if held.tiers.contains(name) {
                    let f = super::tier(&store, Some(name)).remove(key, ns)?;
                    *n += u64::from(f > 0);
                    *b += f;
                    freed += f;
                }
            }
            freed
        };
        if freed > 0 {
            entries += 1;
            bytes += freed;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut line = format!("removed {} ({})", entries_n(entries), human::bytes(bytes));
    if entries > 0 && !per_tier.is_empty() {
        let parts: Vec<String> = per_tier
            .iter()
            .map(|(name, n, b)| format!("{name} {} ({})", entries_n(*n), human::bytes(*b)))
            .collect();
        line.push_str(&format!(": {}", parts.join(", ")));
    }
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

fn entries_n(n: u64) -> String {
    format!("{n} entr{}", if n == 1 { "y" } else { "ies" })
}

fn select(all: Vec<Held>, settings: &Settings, args: &ClearArgs) -> Result<Vec<Held>> {
    let mut chosen: Vec<Held> = if args.opts.extra.is_empty() {
        all
    } else {
        let listed: Vec<Listed> = all.iter().map(|h| h.listed.clone()).collect();
        let mut keys = Vec::new();
        for prefix in &args.opts.extra {
            keys.extend(
                select::by_prefix(&listed, prefix)?
                    .into_iter()
                    .map(|l| l.meta.key),
            );
        }
        all.into_iter()
            .filter(|h| keys.contains(&h.listed.meta.key))
            .collect()
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
        chosen.retain(|h| h.listed.meta.age(now) > bound);
    }
    Ok(chosen)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
