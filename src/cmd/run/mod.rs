//! `cachier run`: replay a fresh entry, or run the command once (single-flight)
//! and store its result. A cache problem never changes what the command does.
mod fallback;
mod files;
mod serve;
mod upkeep;

use std::cell::Cell;
use std::time::SystemTime;

use anyhow::Result;

use self::serve::Hit;

use crate::cli::RunArgs;
use crate::entry::{Body, Corrupt, Event, Meta, NewerFormat, Output};
use crate::error::{BROKEN_PIPE, Exit};
use crate::exec::{self, Outcome, Unstorable};
use crate::human;
use crate::key::{self, KeyMaterial};
use crate::outputs::{self, Declared};
use crate::replay::Replayed;
use crate::settings::Settings;
use crate::sign::Trust;
use crate::store::{self, Claim, Found, Lease, Opened};
use crate::wait::Waiting;
use crate::warn;

pub fn run(settings: &Settings, mut args: RunArgs) -> Result<u8> {
    args.stale_after = args.stale_after.or(settings.stale_after);
    args.wait_for_calc_timeout = args
        .wait_for_calc_timeout
        .or(settings.wait_for_calc_timeout);
    args.entry_size_limit = args.entry_size_limit.or(settings.entry_size_limit);
    args.cleanup_stale |= settings.cleanup_stale;
    if !settings.enabled || args.skip_cache {
        return exec::passthrough(&args.key.command);
    }
    let declared = Declared::parse(&args.key.opts.output)?;
    if args.next_time && !declared.is_empty() {
        return Err(crate::error::Exit::usage(
            "--next-time does not combine with --output: a background refresh would rewrite \
             files the next step reads; drop one of them",
        ));
    }
    let trust = Trust::load(settings.signing_key_file.as_deref())?;
    let material = key::derive(
        &crate::cmd::key_spec(&args.key.opts, settings),
        &args.key.command,
    )?;
    let bounds = store::Bounds {
        stale_after: args.stale_after,
        max_age: args.max_age,
    };
    let store = store::open_with(settings, bounds);
    let mut run = Run {
        settings,
        args: &args,
        material,
        store,
        trust,
        fallback: None,
        stored: false,
        newer_entry: Cell::new(false),
        declared,
        blocked: Cell::new(false),
    };
    let code = run.go()?;
    run.maintain();
    Ok(code)
}

/// An entry a lookup found servable: verified, and fresh (or `stale`
/// under `--next-time`).
struct Servable {
    meta: Meta,
    body: Body,
    stale: bool,
}

struct Run<'a> {
    settings: &'a Settings,
    args: &'a RunArgs,
    material: KeyMaterial,
    store: Opened,
    /// What this run signs with, and whose entries it serves.
    trust: Trust,
    /// A stale entry to serve if the command fails (`--stale-if-error`).
    fallback: Option<Found>,
    /// This run published an entry.
    stored: bool,
    /// A newer cachier's entry stands under the key: kept, not replaced.
    newer_entry: Cell<bool>,
    /// The `--output`s.
    declared: Declared,
    /// The local tree kept an entry's outputs from being restored: run the
    /// command, and store nothing over the entry.
    blocked: Cell<bool>,
}

impl Run<'_> {
    fn go(&mut self) -> Result<u8> {
        let key = self.material.key;

        let mut waited = false;
        loop {
            if !self.args.overwrite
                && !self.args.refresh
                && let Some(Servable { meta, body, stale }) = self.lookup(true)?
            {
                let hit = if stale { Hit::Refreshing } else { Hit::Fresh };
                return self.serve(&meta, &body, waited, hit);
            }
            if waited && let Some(code) = self.serve_fallback(None)? {
                return Ok(code);
            }
            let claim = match self.store.claim(&key) {
                Ok(claim) => claim,
                Err(e) => {
                    self.trouble(e)?;
                    return self.compute(None);
                }
            };
            match claim {
                Claim::Owner(lease) => {
                    // Someone may have stored it between our lookup and our claim.
                    if !self.args.overwrite
                        && let Some(Servable {
                            meta,
                            body,
                            stale: false,
                        }) = self.lookup(false)?
                    {
                        drop(lease);
                        if self.args.refresh {
                            return Ok(0);
                        }
                        return self.serve(&meta, &body, waited, Hit::Fresh);
                    }
                    return self.compute(Some(lease));
                }
                Claim::Busy(_) if self.args.refresh => return Ok(0),
                Claim::Busy(holder) => {
                    waited = true;
                    let waiting = Waiting::start(&key, holder.as_ref(), self.settings.verbose);
                    let done = self.store.wait(
                        &key,
                        self.args.wait_for_calc_timeout.filter(|t| !t.is_zero()),
                    );
                    waiting.finish();
                    match done {
                        Ok(true) => continue,
                        Ok(false) => {
                            self.verbose(|| {
                                format!("gave up waiting for {}; running it here", key.short())
                            });
                            return self.compute(None);
                        }
                        Err(e) => {
                            self.trouble(e)?;
                            return self.compute(None);
                        }
                    }
                }
            }
        }
    }

    /// Find a servable entry. A corrupt one is removed and counts as missing.
    fn lookup(&mut self, allow_stale: bool) -> Result<Option<Servable>> {
        let key = &self.material.key;
        let found = match self.store.get(key) {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => return self.discard(e),
        };
        let age = found.meta.age(SystemTime::now());
        if self.args.max_age.is_some_and(|max| age > max) {
            return Ok(None);
        }
        let stale_after = found.stale_after.or(self.args.stale_after);
        let stale = stale_after.is_some_and(|s| age > s);
        // Checked before the body moves: an untrusted entry costs no transfer.
        if let Err(e) = self.trust.check(&found.meta) {
            warn::once(&format!(
                "{e}; not served, ran the command (its result replaces it)"
            ));
            return Ok(None);
        }
        if stale && !(allow_stale && self.args.next_time) {
            self.keep_fallback(found);
            return Ok(None);
        }
        let meta = found.meta;
        let body = match found.body.fetch() {
            Ok(body) => body,
            Err(e) => return self.discard(e),
        };
        if let Err(e) = body.verify(&meta) {
            return self.discard(e.into());
        }
        // The files first, then the replay: when we exit, they are there.
        if self.blocked.get() {
            return Ok(None);
        }
        match outputs::restore(&self.declared, &meta, &body) {
            Ok(()) => {}
            Err(outputs::Failure::Corrupt(why)) => {
                let key = meta.key.short();
                return self.discard(Corrupt { key, why }.into());
            }
            Err(outputs::Failure::Blocked(why)) => {
                self.blocked.set(true);
                warn::once(&format!(
                    "outputs of {} not restored ({why}); running the command, the entry stays",
                    key.short()
                ));
                return Ok(None);
            }
        }
        Ok(Some(Servable { meta, body, stale }))
    }

    /// A failed read: drop the entry if it is corrupt (unless read-only),
    /// keep it if a newer cachier wrote it, warn, carry on as a miss.
    fn discard(&self, err: anyhow::Error) -> Result<Option<Servable>> {
        if err.downcast_ref::<NewerFormat>().is_some() {
            self.newer_entry.set(true);
            warn::once(&format!("{err:#}; ran the command"));
        } else if err.downcast_ref::<Corrupt>().is_some() && !self.store.writable() {
            self.trouble_then(err, "left it in place (read-only) and ran the command")?;
        } else if err.downcast_ref::<Corrupt>().is_some() {
            let _ = self
                .store
                .remove(&self.material.key, &self.material.namespace);
            self.trouble_then(err, "discarded it and ran the command")?;
        } else {
            self.trouble(err)?;
        }
        Ok(None)
    }

    /// Run the command, streaming and recording; store what may be stored.
    fn compute(&mut self, lease: Option<Box<dyn Lease>>) -> Result<u8> {
        // A key that cannot sign stops us before the command runs, not after.
        self.trust.ready()?;
        let key = self.material.key;
        let spool = match self.kept_out() {
            Some(_) => None,
            None => match self.store.begin(&key) {
                Ok(spool) => Some(spool),
                Err(e) => {
                    self.trouble(e)?;
                    None
                }
            },
        };
        let stdin = self.material.stdin.take();
        let mut outcome = exec::capture(
            &self.material.argv,
            stdin,
            spool,
            self.args.entry_size_limit,
            self.settings.strict,
            self.fallback.is_some(),
        )?;
        let code = exec::exit_code(outcome.status);
        // Failed: an exit code that is not stored; a signal is no failure to hide.
        let failed = outcome.status.code().is_some_and(|c| !self.cacheable(c))
            && !matches!(outcome.unstorable, Some(Unstorable::Interrupted(_)));
        let held = outcome.held.take().map(|h| (h, outcome.runs.clone()));
        let verdict = self.store_outcome(outcome);
        // Released before the counting: waiters woken by the release do
        // not wait for a round trip that is not theirs.
        drop(lease);
        let _ = self
            .store
            .record(&self.material.namespace, &key, Event::Miss);
        if let Some((held, runs)) = held {
            if failed && let Some(stale_code) = self.serve_fallback(Some(code))? {
                return Ok(stale_code);
            }
            let released = held
                .release(&runs)
                .map_err(|e| Exit::failed(format!("cannot write the command's output: {e}")))?;
            if released == Replayed::StdoutClosed {
                return Ok(BROKEN_PIPE);
            }
        }
        let verdict = verdict?;
        self.verbose(|| format!("miss {} (exit {code}, {verdict})", key.short()));
        Ok(code)
    }

    fn store_outcome(&mut self, mut outcome: Outcome) -> Result<String> {
        let code = outcome.status.code();
        let cacheable = code.is_some_and(|c| self.cacheable(c)) || self.args.cache_failures;
        let why_not = match &outcome.unstorable {
            Some(Unstorable::OutputClosed) => Some("not stored: output closed early".to_string()),
            Some(Unstorable::Interrupted(sig)) => {
                Some(format!("not stored: interrupted by signal {sig}"))
            }
            Some(Unstorable::TooLarge(n)) => Some(format!(
                "not stored: output of {n} bytes exceeds --entry-size-limit"
            )),
            Some(Unstorable::SpoolFailed(what)) if self.settings.strict => {
                return Err(Exit::failed(format!("{what} (--strict)")));
            }
            Some(Unstorable::SpoolFailed(_)) => {
                Some("not stored: the cache could not be written".to_string())
            }
            None if !cacheable => {
                Some("not stored: exit code not in --cache-exit-codes".to_string())
            }
            None if self.args.no_empty && outcome.lens[0] == 0 => {
                Some("not stored: empty stdout (--no-empty)".to_string())
            }
            None => None,
        };
        if let Some(why) = why_not {
            return Ok(why);
        }
        let Some(mut spool) = outcome.spool.take() else {
            let why = self.kept_out().unwrap_or("the cache is unavailable");
            return Ok(format!("not stored: {why}"));
        };
        let files = match self.capture(spool.as_mut(), &outcome)? {
            Ok(files) => files,
            Err(why) => return Ok(why),
        };
        let output = Output {
            lens: outcome.lens,
            hashes: outcome.hashes,
            runs: outcome.runs.clone(),
        };
        let mut meta = Meta::made_now(&self.material, code.unwrap_or(0), output, outcome.duration);
        meta.outputs = files;
        // (Signed last: the seal covers the outputs.)
        self.trust.sign(&mut meta)?;
        match spool.commit(&meta) {
            Ok(()) => {
                self.stored = true;
                Ok(format!("stored, ran {}", human::duration(outcome.duration)))
            }
            Err(e) => {
                self.trouble(e)?;
                Ok("not stored".into())
            }
        }
    }

    /// Why this run must store nothing, if it must not.
    fn kept_out(&self) -> Option<&'static str> {
        if !self.store.writable() {
            Some("read-only")
        } else if self.newer_entry.get() {
            Some("a newer cachier's entry stands there")
        } else {
            None
        }
    }

    /// Whether a run that exited with `code` is stored.
    fn cacheable(&self, code: i32) -> bool {
        self.args.cache_failures || self.args.cache_exit_codes.contains(&code)
    }

    /// A cache problem: an error under `--strict`, else one warning and go on uncached.
    fn trouble(&self, err: anyhow::Error) -> Result<()> {
        self.trouble_then(
            err,
            "running uncached (fix the cache, or pick another with --backend, --cache-dir or --sql-url)",
        )
    }

    fn trouble_then(&self, err: anyhow::Error, then: &str) -> Result<()> {
        if self.settings.strict {
            return Err(Exit::failed(format!("{err:#} (--strict)")));
        }
        warn::once(&format!("{err:#}; {then}"));
        Ok(())
    }

    /// A line for `-v`, made only under it (a hit must not pay for
    /// formatting what nobody sees).
    fn verbose(&self, what: impl FnOnce() -> String) {
        if self.settings.verbose {
            warn::line(&what());
        }
    }
}
