//! `cachier clear`: remove everything, what matches the filters, or the
//! entry one command line would hit; report how many entries and bytes went.
use std::time::SystemTime;

use std::io::Write;

use anyhow::Result;

use super::sorter::Sorter;
use super::{Held, select};
use crate::cli::ClearArgs;
use crate::error::Exit;
use crate::human;
use crate::key;
use crate::settings::Settings;
use crate::store::{self, Listed, Opened};

pub fn run(settings: &Settings, args: &ClearArgs) -> Result<u8> {
    let store = store::open(settings);
    let mut notes = Vec::new();
    if args.being_calculated {
        let wiped = store.clear_claims()?;
        notes.push(format!("wiped {wiped} leftover claim{}", plural(wiped)));
    }
    let names: Vec<&'static str> = store.tiers().iter().map(|(n, _)| *n).collect();
    // The chosen entries, in listing order; outside memory past a budget.
    let mut chosen = Sorter::new();
    let mut choose = |h: &Held| -> Result<()> {
        let mut record = Vec::with_capacity(40);
        record.extend_from_slice(&h.listed.meta.key.0);
        record.push(h.tiers.len() as u8);
        record.extend(h.tiers.iter().map(|t| tier_index(&names, t)));
        record.extend_from_slice(h.listed.meta.namespace.as_bytes());
        chosen.push(&[], &record)
    };
    if !args.command.is_empty() {
        let material = key::derive(&super::key_spec(&args.opts, settings), &args.command)?;
        store.scan_held(Some(&material.namespace), &mut |listed, tiers| {
            if listed.meta.key == material.key {
                choose(&Held { listed, tiers })?;
            }
            Ok(())
        })?;
    } else if args.being_calculated && !filtered(args) {
    } else {
        select(&store, settings, args, &mut choose)?;
    }
    let bar = human::progress(chosen.len(), "clearing");
    let (mut entries, mut bytes) = (0u64, 0u64);
    // Per tier of a stack: entries and bytes removed there.
    let mut per_tier: Vec<(&str, u64, u64)> = names.iter().map(|n| (*n, 0, 0)).collect();
    chosen.sorted()?.each(&mut |record| {
        let (key, tiers, ns) = chosen_entry(record)?;
        let freed = if per_tier.is_empty() {
            store.remove(&key, ns)?
        } else {
            let mut freed = 0;
            for (i, (name, n, b)) in per_tier.iter_mut().enumerate() {
                if tiers.contains(&(i as u8)) {
                    let f = super::tier(&store, Some(name)).remove(&key, ns)?;
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
        Ok(())
    })?;
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

/// Hand what the filters choose to `choose`, in listing order.
fn select(
    store: &Opened,
    settings: &Settings,
    args: &ClearArgs,
    choose: &mut dyn FnMut(&Held) -> Result<()>,
) -> Result<()> {
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
    let now = SystemTime::now();
    let old = |h: &Held| bound.is_none_or(|bound| h.listed.meta.age(now) > bound);
    let name = args.opts.name.as_deref();
    if args.opts.extra.is_empty() {
        return store.scan_held(name, &mut |listed, tiers| {
            let held = Held { listed, tiers };
            if old(&held) { choose(&held) } else { Ok(()) }
        });
    }
    // Key prefixes: only entries some prefix matches are candidates, and
    // each prefix must name one of them.
    let prefixes: Vec<String> = args
        .opts
        .extra
        .iter()
        .map(|p| p.to_ascii_lowercase())
        .collect();
    let mut candidates: Vec<Held> = Vec::new();
    store.scan_held(name, &mut |listed, tiers| {
        let hex = listed.meta.key.hex();
        if prefixes.iter().any(|p| hex.starts_with(p.as_str())) {
            candidates.push(Held { listed, tiers });
        }
        Ok(())
    })?;
    let listed: Vec<Listed> = candidates.iter().map(|h| h.listed.clone()).collect();
    let mut keys = Vec::new();
    for prefix in &args.opts.extra {
        keys.extend(
            select::by_prefix(&listed, prefix)?
                .into_iter()
                .map(|l| l.meta.key),
        );
    }
    for held in &candidates {
        if keys.contains(&held.listed.meta.key) && old(held) {
            choose(held)?;
        }
    }
    Ok(())
}

/// Which of the stack's tiers `name` is (0 for one backend).
fn tier_index(names: &[&str], name: &str) -> u8 {
    names.iter().position(|n| *n == name).unwrap_or(0) as u8
}

/// The key, tier indexes and namespace of a chosen entry.
fn chosen_entry(record: &[u8]) -> Result<(key::Key, &[u8], &str)> {
    let cut = || anyhow::anyhow!("clear: a chosen entry came back cut short");
    let (k, rest) = record.split_first_chunk::<32>().ok_or_else(cut)?;
    let (&n, rest) = rest.split_first().ok_or_else(cut)?;
    let (tiers, ns) = rest.split_at_checked(usize::from(n)).ok_or_else(cut)?;
    Ok((key::Key(*k), tiers, std::str::from_utf8(ns)?))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
