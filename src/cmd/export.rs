//! `cachier export`: every entry (or one namespace's) to stdout as a dump
//! (format in dump.rs). An entry that fails verification is skipped with a
//! warning: a dump only ever holds sound entries.
use std::io::{self, BufWriter, IsTerminal, Write};

use anyhow::{Context, Result};

use crate::cli::ExportArgs;
use crate::dump::Writer;
use crate::entry::Corrupt;
use crate::error::Exit;
use crate::human::{self, count};
use crate::settings::Settings;
use crate::store::{self, Listed, Store};
use crate::warn;

pub fn run(settings: &Settings, args: &ExportArgs) -> Result<u8> {
    let stdout = io::stdout();
    if stdout.is_terminal() {
        return Err(Exit::usage(
            "export writes a binary stream, not text for a terminal; redirect it: cachier export > dump",
        ));
    }
    let store = store::open(settings);
    let listed = store
        .list(args.name.as_deref())
        .context("export: cannot list the cache")?;
    let bar = human::progress_bytes(Some(listed.iter().map(|l| l.size).sum()), "exporting");
    let out = BufWriter::with_capacity(1 << 16, bar.wrap_write(stdout.lock()));
    let result = export(&*store, &listed, out);
    bar.finish_and_clear();
    // A closed stdout (`| head`) keeps its io::Error in the chain: main then
    // exits 141 quietly, as a writer killed by SIGPIPE would.
    let (entries, bytes, skipped) = result?;
    let mut summary = format!(
        "exported {} ({})",
        count(entries, "entry", "entries"),
        human::bytes(bytes)
    );
    if skipped > 0 {
        summary.push_str(&format!(", skipped {skipped} corrupt"));
    }
    warn::line(&summary);
    Ok(0)
}

/// Write the dump; the entries and bytes written, and how many were skipped.
fn export(store: &dyn Store, listed: &[Listed], out: impl Write) -> Result<(u64, u64, u64)> {
    let mut writer = Writer::start(out)?;
    let mut skipped = 0;
    for meta in listed.iter().map(|l| &l.meta) {
        let key = &meta.key;
        let body = store.get(key).and_then(|found| {
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
            Err(e) if e.downcast_ref::<Corrupt>().is_some() => {
                skipped += 1;
                warn::line(&format!("warning: export: {e:#}; skipped it"));
                continue;
            }
            Err(e) => return Err(e.context(format!("export: cannot read entry {}", key.short()))),
        };
        writer
            .entry(&meta, &body)
            .with_context(|| format!("export: stopped at entry {}", meta.key.short()))?;
    }
    let (entries, bytes) = writer
        .finish()
        .context("export: stopped at the end record")?;
    Ok((entries, bytes, skipped))
}
