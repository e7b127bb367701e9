//! `cachier export`: every entry (or one namespace's) to stdout as a dump
//! (format in dump.rs). An entry that fails verification is skipped with a
//! warning: a dump only ever holds sound entries.
use std::io::{self, BufWriter, IsTerminal, Write};

use anyhow::{Context, Result};

use super::sorter::{Sorted, Sorter};
use crate::cli::ExportArgs;
use crate::dump::Writer;
use crate::entry::{Corrupt, NewerFormat};
use crate::error::Exit;
use crate::human::{self, count};
use crate::key::Key;
use crate::settings::Settings;
use crate::store::{self, Opened};
use crate::warn;

pub fn run(settings: &Settings, args: &ExportArgs) -> Result<u8> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return Err(Exit::usage(
            "export writes a binary stream, not text for a terminal; redirect it: cachier export > dump",
        ));
    }
    let store = store::open(settings);
    // First the keys (and the tier holding each highest), outside memory
    // past a budget, and the bytes to go; then the entries one at a time.
    let names: Vec<&'static str> = store.tiers().iter().map(|(n, _)| *n).collect();
    let mut listed = Sorter::new();
    let mut total = 0u64;
    store
        .scan_held(args.name.as_deref(), &mut |l, tiers| {
            total += l.size;
            let mut record = [u8::MAX; 33];
            record[..32].copy_from_slice(&l.meta.key.0);
            if let Some(i) = tiers
                .first()
                .and_then(|t| names.iter().position(|n| n == t))
            {
                record[32] = i as u8;
            }
            listed.push(&[], &record)
        })
        .context("export: cannot list the cache")?;
    let listed = listed.sorted()?;
    let bar = human::progress_bytes(Some(total), "exporting");
    let out = BufWriter::with_capacity(1 << 16, bar.wrap_write(stdout.lock()));
    let result = export(&store, &names, &listed, out);
    bar.finish_and_clear();
    // A closed stdout (`| head`) keeps its io::Error in the chain: main then
    // exits 141 quietly, as a writer killed by SIGPIPE would.
    let (entries, bytes, skipped, from) = result?;
    let mut summary = format!(
        "exported {} ({})",
        count(entries, "entry", "entries"),
        human::bytes(bytes)
    );
    if !from.is_empty() {
        let parts: Vec<String> = from.iter().map(|(t, n)| format!("{n} from {t}")).collect();
        summary.push_str(&format!(": {}", parts.join(", ")));
    }
    if skipped > 0 {
        summary.push_str(&format!(", skipped {skipped} corrupt"));
    }
    warn::line(&summary);
    Ok(0)
}

/// Entries and bytes written, entries skipped, entries taken from each tier.
type Exported = (u64, u64, u64, Vec<(&'static str, u64)>);

/// Write the dump; the entries and bytes written, how many were skipped,
/// and for a stack how many came from each tier (each entry's highest copy).
fn export(
    store: &Opened,
    names: &[&'static str],
    listed: &Sorted,
    out: impl Write,
) -> Result<Exported> {
    let mut writer = Writer::start(out)?;
    let mut skipped = 0;
    let mut from: Vec<(&'static str, u64)> = names.iter().map(|n| (*n, 0)).collect();
    listed.each(&mut |record| {
        let Some((key, tier)) = record.split_first_chunk::<32>() else {
            return Err(anyhow::anyhow!("export: a listed key came back cut short"));
        };
        let key = &Key(*key);
        let tier = tier
            .first()
            .and_then(|&i| names.get(usize::from(i)).copied());
        let body = super::tier(store, tier).get(key).and_then(|found| {
            found
                .map(|f| f.body.fetch().map(|b| (f.meta, b)))
                .transpose()
        });
        let (meta, body) = match body {
            Ok(Some((meta, body))) => match body.verify(&meta) {
                Ok(()) => (meta, body),
                Err(e) => {
                    skipped += 1;
                    warn::line(&format!("warning: export: {e}; skipped it"));
                    return Ok(());
                }
            },
            // Removed since it was listed.
            Ok(None) => return Ok(()),
            Err(e)
                if e.downcast_ref::<Corrupt>().is_some()
                    || e.downcast_ref::<NewerFormat>().is_some() =>
            {
                skipped += 1;
                warn::line(&format!("warning: export: {e:#}; skipped it"));
                return Ok(());
            }
            Err(e) => return Err(e.context(format!("export: cannot read entry {}", key.short()))),
        };
        writer
            .entry(&meta, &body)
            .with_context(|| format!("export: stopped at entry {}", meta.key.short()))?;
        if let Some(count) = from.iter_mut().find(|(n, _)| Some(*n) == tier) {
            count.1 += 1;
        }
        Ok(())
    })?;
    let (entries, bytes) = writer
        .finish()
        .context("export: stopped at the end record")?;
    Ok((entries, bytes, skipped, from))
}
