//! One module per subcommand; `dispatch` picks the one the user asked for.
//! Also what several share: the table printer, entries with the tiers that
//! hold them, a tier by name, and the key options as plain data.
mod clear;
mod config;
mod daemon;
mod export;
mod gc;
mod import;
mod key;
mod keygen;
mod ls;
mod openmetrics;
mod precache;
mod run;
mod select;
mod show;
mod sorter;
mod stats;

use std::io::Write;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::settings::Settings;
use crate::store::{self, Listed, Opened, Store};

pub fn dispatch(cli: Cli) -> Result<u8> {
    // `config` edits the file the settings come from, so it must work while
    // that file (or a variable) holds a bad value: it resolves nothing.
    if let Command::Config(cmd) = &cli.command {
        return config::run(cmd);
    }
    if let Command::Keygen(args) = &cli.command {
        return keygen::run(args);
    }
    let settings = Settings::resolve(&cli.global)?;
    // A bad URL of a chosen backend is a usage error, before anything runs.
    store::check(&settings).map_err(crate::error::Exit::usage)?;
    match cli.command {
        Command::Run(args) => run::run(&settings, args),
        Command::Key(args) => key::run(&settings, &args),
        Command::Clear(args) => clear::run(&settings, &args),
        Command::Stats(args) => stats::run(&settings, &args),
        Command::Ls(args) => ls::run(&settings, &args),
        Command::Show(args) => show::run(&settings, &args),
        Command::Precache(args) => precache::run(&settings, &args),
        Command::Gc(args) => gc::run(&settings, &args),
        Command::Path => {
            writeln!(std::io::stdout(), "{}", store::open(&settings).location())?;
            Ok(0)
        }
        Command::Export(args) => export::run(&settings, &args),
        Command::Import(args) => import::run(&settings, &args),
        Command::Config(cmd) => config::run(&cmd),
        Command::Daemon(cmd) => daemon::run(&settings, &cmd),
        Command::Keygen(args) => keygen::run(&args),
    }
}

/// Print rows under a header, columns padded; the last column is not padded.
fn table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut columns = Columns::new(header);
    for row in rows {
        columns.widen(row);
    }
    columns.line(out, header)?;
    for row in rows {
        columns.line(out, row)?;
    }
    Ok(())
}

/// The column widths of a [`table`], widened row by row, so that rows can
/// be printed afterwards without all being held.
struct Columns {
    widths: Vec<usize>,
}

impl Columns {
    fn new(header: &[&str]) -> Columns {
        Columns {
            widths: header.iter().map(|h| h.len()).collect(),
        }
    }

    fn widen(&mut self, row: &[impl AsRef<str>]) {
        for (w, cell) in self.widths.iter_mut().zip(row) {
            *w = (*w).max(cell.as_ref().chars().count());
        }
    }

    /// One row, each cell but the last padded to its column's width.
    fn line(&self, out: &mut impl Write, cells: &[impl AsRef<str>]) -> std::io::Result<()> {
        let mut text = String::new();
        self.line_into(&mut text, cells.iter().map(|c| c.as_ref()));
        out.write_all(text.as_bytes())
    }

    /// The same into `text` (cleared first), for a caller printing many.
    fn line_into<'a>(&self, text: &mut String, cells: impl Iterator<Item = &'a str>) {
        text.clear();
        for (i, cell) in cells.enumerate() {
            text.push_str(cell);
            if i + 1 != self.widths.len() {
                // As `{cell:<w$}` pads: to `w` chars.
                let w = self.widths.get(i).copied().unwrap_or(0);
                let pad = w.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        text.truncate(text.trim_end().len());
        text.push('\n');
    }

    /// Cell `i` of a row being packed into `row` (its length, then its
    /// text), its column widened to fit.
    fn pack(&mut self, i: usize, cell: &str, row: &mut Vec<u8>) {
        if let Some(w) = self.widths.get_mut(i) {
            *w = (*w).max(cell.chars().count());
        }
        row.extend_from_slice(&(cell.len() as u32).to_le_bytes());
        row.extend_from_slice(cell.as_bytes());
    }
}

/// An entry, and the tiers of a stack that hold it (none for a plain store).
pub struct Held {
    pub listed: Listed,
    pub tiers: Vec<&'static str>,
}

/// The store of the tier called `name`, or the store itself.
/// Refuse to `what` into a read-only store (`--read-only`), which would
/// take the entries and keep none.
fn writable(store: &Opened, what: &str) -> Result<()> {
    if store.writable() {
        return Ok(());
    }
    Err(crate::error::Exit::failed(format!(
        "cannot {what}: the cache is read-only (--read-only, CACHIER_READ_ONLY or read_only); \
         drop it to write"
    )))
}

fn tier<'a>(store: &'a Opened, name: Option<&str>) -> &'a dyn Store {
    store
        .tiers()
        .into_iter()
        .find(|(n, _)| Some(*n) == name)
        .map_or(&**store, |(_, s)| s)
}

/// The key options as the engine takes them: plain data, no parser types.
pub fn key_spec(
    opts: &crate::cli::KeyOpts,
    settings: &crate::settings::Settings,
) -> crate::key::KeySpec {
    crate::key::KeySpec {
        env: opts.env.clone(),
        all_env: opts.all_env,
        inputs: opts.input.clone(),
        outputs: opts.output.clone(),
        stdin: opts.stdin,
        extra: opts.extra.clone(),
        name: opts.name.clone(),
        no_cwd: opts.no_cwd,
        no_program: opts.no_program,
        no_ignore: opts.no_ignore,
        watch: settings.watch,
    }
}
