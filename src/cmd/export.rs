//! `cachier export`: every entry (or one namespace's) to stdout as a dump
//! (format in dump.rs). An entry that fails verification is skipped with a
//! warning: a dump only ever holds sound entries.
use std::io::{self, BufWriter, IsTerminal, Write};

use anyhow::{Context, Result};

use super::Held;
use crate::cli::ExportArgs;
use crate::dump::Writer;
use crate::entry::{Corrupt, NewerFormat};
use crate::error::Exit;
use crate::human::{self, count};
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
    let listed =
        super::held(&store, args.name.as_deref()).context("export: cannot list the cache")?;
    let bar = human::progress_bytes(
        Some(listed.iter().map(|h| h.listed.size).sum()),
        "exporting",
    );
    let out = BufWriter::with_capacity(1 << 16, bar.wrap_write(stdout.lock()));
    let result = export(&store, &listed, out);
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
fn export(store: &Opened, listed: &[Held], out: impl Write) -> Result<Exported> {
    let mut writer = Writer::start(out)?;
    let mut skipped = 0;
    let mut from: Vec<(&'static str, u64)> = store.tiers().iter().map(|(n, _)| (*n, 0)).collect();
    for held in listed {
        let (meta, tier) = (&held.listed.meta, held.tiers.first().copied());
        let key = &meta.key;
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
                    continue;
                }
            },
            // Removed since it was listed.
            Ok(None) => continue,
            Err(e)
                if e.downcast_ref::<Corrupt>().is_some()
                    || e.downcast_ref::<NewerFormat>().is_some() =>
            {
                skipped += 1;
                warn::line(&format!("warning: export: {e:#}; skipped it"));
                continue;
            }
            Err(e) => return Err(e.context(format!("export: cannot read entry {}", key.short()))),
        };
        writer
            .entry(&meta, &body)
            .with_context(|| format!("export: stopped at entry {}", meta.key.short()))?;
        if let Some(count) = from.iter_mut().find(|(n, _)| Some(*n) == tier) {
            count.1 += 1;
        }
    }
    let (entries, bytes) = writer
        .finish()
        .context("export: stopped at the end record")?;
    Ok((entries, bytes, skipped, from))
}
