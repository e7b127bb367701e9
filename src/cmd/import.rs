//! `cachier import`: read a dump (format in `dump/`) from stdin into the
//! store. Each entry is committed only after its record verifies, so a bad
//! stream stops the import with every entry before it intact. An entry
//! already stored under the same key stays if it is at least as new.
use std::io::{self, IsTerminal, Read};

use anyhow::{Context, Result};

use crate::cli::ImportArgs;
use crate::dump::{Problem, Reader, StreamError};
use crate::entry::{Corrupt, Meta, NewerFormat};
use crate::error::{CACHIER_FAILED, Exit, USAGE};
use crate::human::{self, count};
use crate::settings::Settings;
use crate::sign::Trust;
use crate::store::{self, Store};
use crate::warn;

pub fn run(settings: &Settings, args: &ImportArgs) -> Result<u8> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Err(Exit::usage(
            "import reads a dump from standard input; redirect it: cachier import < dump",
        ));
    }
    let trust = Trust::load(settings.signing_key_file.as_deref())?;
    if args.sign && !trust.can_sign() {
        return Err(Exit::usage(
            "import --sign needs a signing key: set CACHIER_SIGNING_KEY or config signing_key_file",
        ));
    }
    if args.sign {
        trust.ready()?;
    }
    let policy = Policy {
        trust,
        sign: args.sign,
    };
    // Sized for the bar when stdin is a file; a pipe gets a spinner.
    let total = rustix::fs::fstat(&stdin)
        .ok()
        .filter(|s| rustix::fs::FileType::from_raw_mode(s.st_mode).is_file())
        .map(|s| s.st_size as u64);
    let bar = human::progress_bytes(total, "importing");
    let store = store::open(settings);
    super::writable(&store, "import")?;
    let mut tally = Tally::default();
    let result = import(&*store, bar.wrap_read(stdin.lock()), &policy, &mut tally);
    bar.finish_and_clear();
    let bytes = result.map_err(|failure| failure.explain(&tally))?;
    let mut summary = format!(
        "imported {} ({})",
        count(tally.imported, "entry", "entries"),
        human::bytes(bytes)
    );
    if tally.kept > 0 {
        summary.push_str(&format!(
            ", kept {} already here and as new or newer",
            count(tally.kept, "entry", "entries")
        ));
    }
    if tally.refused > 0 {
        summary.push_str(&format!(
            ", refused {} not signed by a trusted key (import --sign signs them with your key)",
            count(tally.refused, "entry", "entries")
        ));
    }
    if tally.signed > 0 {
        summary.push_str(&format!(
            ", signed {} with your key",
            count(tally.signed, "entry", "entries")
        ));
    }
    warn::line(&summary);
    Ok(0)
}

/// What import does with entries a trusted key did not sign.
struct Policy {
    trust: Trust,
    /// Sign them (`--sign`) rather than refuse them.
    sign: bool,
}

#[derive(Default)]
struct Tally {
    imported: u64,
    kept: u64,
    refused: u64,
    signed: u64,
}

enum Failure {
    Stream(StreamError),
    Store(anyhow::Error),
}

impl From<StreamError> for Failure {
    fn from(e: StreamError) -> Failure {
        Failure::Stream(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Store(e)
    }
}

impl Failure {
    /// One line: what went wrong, what was kept, what to do.
    fn explain(self, tally: &Tally) -> anyhow::Error {
        let (code, what) = match self {
            Failure::Stream(
                e @ StreamError {
                    problem: Problem::Empty | Problem::NotADump | Problem::Version(_),
                    ..
                },
            ) => return Exit::usage(format!("import: {e}")),
            Failure::Stream(
                e @ StreamError {
                    problem: Problem::Read(_),
                    ..
                },
            ) => (CACHIER_FAILED, e.to_string()),
            Failure::Stream(e) => (USAGE, e.to_string()),
            Failure::Store(e) => (CACHIER_FAILED, format!("{e:#}")),
        };
        let before = match tally.imported {
            0 => "nothing was imported before it".to_string(),
            n => format!(
                "the {} imported before it {} kept",
                count(n, "entry", "entries"),
                if n == 1 { "is" } else { "are" }
            ),
        };
        Exit {
            code,
            message: format!(
                "import: {what}; {before} (import a sound dump again: entries already here are skipped)"
            ),
        }
        .into()
    }
}

/// Stream every record into the store; the bytes read.
fn import(
    store: &dyn Store,
    input: impl Read,
    policy: &Policy,
    tally: &mut Tally,
) -> Result<u64, Failure> {
    let mut reader = Reader::open(input)?;
    while let Some(mut meta) = reader.next_entry()? {
        if policy.trust.enforcing() && policy.trust.check(&meta).is_err() {
            if !policy.sign {
                // Read (and verify) its body, store none of it.
                while reader.chunk()?.is_some() {}
                tally.refused += 1;
                continue;
            }
            policy.trust.sign(&mut meta)?;
            tally.signed += 1;
        }
        if keep_existing(store, &meta)? {
            // The next `next_entry` still reads and verifies this record.
            tally.kept += 1;
            continue;
        }
        let short = meta.key.short();
        let mut spool = store
            .begin(&meta.key)
            .with_context(|| format!("cannot store entry {short}"))?;
        while let Some((stream, data)) = reader.chunk()? {
            spool
                .write(stream, data)
                .with_context(|| format!("cannot store entry {short}"))?;
        }
        spool
            .commit(&meta)
            .with_context(|| format!("cannot store entry {short}"))?;
        tally.imported += 1;
    }
    Ok(reader.bytes())
}

/// Whether a sound entry at least as new as `meta` is stored under its key.
fn keep_existing(store: &dyn Store, meta: &Meta) -> Result<bool> {
    let context = || format!("cannot read entry {} from the cache", meta.key.short());
    let found = match store.get(&meta.key) {
        Ok(Some(found)) if found.meta.created_ms >= meta.created_ms => found,
        Ok(_) => return Ok(false),
        // A newer cachier's entry is never overwritten.
        Err(e) if e.downcast_ref::<NewerFormat>().is_some() => return Ok(true),
        Err(e) if e.downcast_ref::<Corrupt>().is_some() => return Ok(false),
        Err(e) => return Err(e).with_context(context),
    };
    // A corrupt entry is no reason to turn a sound one away.
    match found.body.fetch() {
        Ok(body) => Ok(body.verify(&found.meta).is_ok()),
        Err(e) if e.downcast_ref::<Corrupt>().is_some() => Ok(false),
        Err(e) => Err(e).with_context(context),
    }
}
