//! A lean parse of the common `cachier run` line, so a hit skips building
//! clap's command tree (about half of a small hit's instructions). clap stays
//! the one definition: anything this parse is not sure of (help, an unknown
//! or repeated flag, a bad value) is left to clap,
//! and a drift test holds the two equal on every line this parse accepts.
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::backend_flags::BackendFlags;
use crate::cli::{Cli, Command, RunArgs, parse_stale_bound};
use crate::store::param::Kind;
use crate::store::registry;
use crate::units::{parse_duration, parse_size};

/// `args` (the program name first) as clap would parse them, or `None` to
/// let clap parse them (and say what is wrong, if anything is).
pub fn parse(args: &[OsString]) -> Option<Cli> {
    let mut rest = args.get(1..)?.iter();
    let mut p = Lean::default();
    // Global flags may come before `run` (`cachier --backend redis run ...`).
    loop {
        let arg = rest.next()?;
        if arg == "run" {
            break;
        }
        let flag = arg.to_str().filter(|f| f.starts_with('-'))?;
        p.take(flag, &mut rest)?.is_global().then_some(())?;
    }
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        let Some(flag) = arg.to_str() else {
            // A command line may hold any bytes; a flag is text.
            return None;
        };
        if !flag.starts_with('-') {
            // The command's first word: the rest is its own (clap's
            // trailing_var_arg).
            p.run.key.command.push(arg.clone());
            break;
        }
        p.take(flag, &mut rest)?;
    }
    p.run.key.command.extend(rest.cloned());
    if p.run.key.command.is_empty() {
        return None;
    }
    if p.run.cache_exit_codes.is_empty() {
        p.run.cache_exit_codes.push(0);
    }
    let mut cli = Cli {
        global: p.global,
        command: Command::Run(p.run),
    };
    cli.global.backend_flags = BackendFlags::from_values(p.backend_flags);
    Some(cli)
}

/// The parse so far.
#[derive(Default)]
struct Lean {
    global: crate::cli::GlobalArgs,
    run: RunArgs,
    backend_flags: Vec<(&'static str, String)>,
    seen: Vec<Flag>,
}

impl Lean {
    /// Take `flag` (and its value from `rest` if it has one): the flag, or
    /// `None` for anything clap must judge.
    fn take(&mut self, flag: &str, rest: &mut std::slice::Iter<'_, OsString>) -> Option<Flag> {
        if flag == "-v" {
            self.set_bool(Flag::Verbose)?;
            return Some(Flag::Verbose);
        }
        let (name, inline) = match flag.strip_prefix("--")?.split_once('=') {
            Some((name, value)) => (name, Some(OsStr::new(value))),
            None => (flag.strip_prefix("--")?, None),
        };
        let flag = Flag::named(name)?;
        if flag.is_bool() {
            if inline.is_some() {
                return None;
            }
            self.set_bool(flag)?;
            return Some(flag);
        }
        if flag == Flag::StaleIfError {
            // `require_equals`: the bare flag means any age.
            let bound = match inline {
                Some(v) => parse_stale_bound(nonempty(v.to_str()?)?).ok()?,
                None => crate::cli::StaleBound(None),
            };
            self.run
                .stale_if_error
                .replace(bound)
                .is_none()
                .then_some(())?;
            return Some(flag);
        }
        let value = match inline {
            Some(v) => v,
            None => rest.next()?.as_os_str(),
        };
        // clap reads `--name -x` as a missing value; leave such lines to it.
        if value.is_empty() || value.as_encoded_bytes().starts_with(b"-") {
            return None;
        }
        self.set_value(flag, value)?;
        Some(flag)
    }

    /// Note `flag` as given; `None` if it was already (clap refuses a
    /// repeated single-valued flag).
    fn once(&mut self, flag: Flag) -> Option<()> {
        if self.seen.contains(&flag) {
            return None;
        }
        self.seen.push(flag);
        Some(())
    }

    fn set_bool(&mut self, flag: Flag) -> Option<()> {
        self.once(flag)?;
        let (g, r) = (&mut self.global, &mut self.run);
        *match flag {
            Flag::Strict => &mut g.strict,
            Flag::ReadOnly => &mut g.read_only,
            Flag::Verbose => &mut g.verbose,
            Flag::AllEnv => &mut r.key.opts.all_env,
            Flag::NoIgnore => &mut r.key.opts.no_ignore,
            Flag::Stdin => &mut r.key.opts.stdin,
            Flag::NoCwd => &mut r.key.opts.no_cwd,
            Flag::NoProgram => &mut r.key.opts.no_program,
            Flag::NextTime => &mut r.next_time,
            Flag::Overwrite => &mut r.overwrite,
            Flag::SkipCache => &mut r.skip_cache,
            Flag::CacheFailures => &mut r.cache_failures,
            Flag::NoEmpty => &mut r.no_empty,
            Flag::CleanupStale => &mut r.cleanup_stale,
            Flag::Refresh => &mut r.refresh,
            _ => return None,
        } = true;
        Some(())
    }

    fn set_value(&mut self, flag: Flag, value: &OsStr) -> Option<()> {
        // Repeatable, and kept as given (paths may be any bytes).
        let opts = &mut self.run.key.opts;
        match flag {
            Flag::Input => opts.input.push(value.to_owned()),
            Flag::Output => opts.output.push(value.to_owned()),
            Flag::Env => opts.env.push(value.to_str()?.to_owned()),
            Flag::Key => opts.extra.push(value.to_str()?.to_owned()),
            Flag::CacheExitCodes => {
                for code in value.to_str()?.split(',') {
                    self.run.cache_exit_codes.push(code.parse().ok()?);
                }
            }
            _ => return self.set_once(flag, value),
        }
        Some(())
    }

    fn set_once(&mut self, flag: Flag, value: &OsStr) -> Option<()> {
        self.once(flag)?;
        let (g, r) = (&mut self.global, &mut self.run);
        let text = || value.to_str().map(str::to_owned);
        match flag {
            Flag::CacheDir => g.cache_dir = Some(PathBuf::from(value)),
            Flag::Backend => g.backend = Some(text()?),
            Flag::Tier => g.tier = Some(text()?),
            Flag::Name => r.key.opts.name = Some(text()?),
            Flag::StaleAfter => r.stale_after = Some(duration(value)?),
            Flag::MaxAge => r.max_age = Some(duration(value)?),
            Flag::WaitForCalcTimeout => r.wait_for_calc_timeout = Some(duration(value)?),
            Flag::EntrySizeLimit => r.entry_size_limit = Some(size(value)?),
            Flag::Param(i) => {
                let param = registry::params().nth(i)?;
                match param.kind {
                    Kind::Text => {}
                    Kind::Size => drop(size(value)?),
                    Kind::Duration => drop(duration(value)?),
                }
                self.backend_flags.push((param.key, text()?));
            }
            _ => return None,
        }
        Some(())
    }
}

fn nonempty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

fn duration(value: &OsStr) -> Option<std::time::Duration> {
    parse_duration(value.to_str()?).ok()
}

fn size(value: &OsStr) -> Option<u64> {
    parse_size(value.to_str()?).ok()
}

/// Every flag `run` takes, global ones included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Backend,
    Tier,
    CacheDir,
    /// A backend's own flag: its index in the registry's params.
    Param(usize),
    Strict,
    ReadOnly,
    Verbose,
    Env,
    AllEnv,
    Input,
    NoIgnore,
    Output,
    Stdin,
    Key,
    Name,
    NoCwd,
    NoProgram,
    StaleAfter,
    MaxAge,
    NextTime,
    StaleIfError,
    Overwrite,
    SkipCache,
    CacheExitCodes,
    CacheFailures,
    NoEmpty,
    EntrySizeLimit,
    CleanupStale,
    WaitForCalcTimeout,
    Refresh,
}

/// The long names of the flags above (backend flags come from the registry).
const NAMES: &[(&str, Flag)] = &[
    ("backend", Flag::Backend),
    ("tier", Flag::Tier),
    ("cache-dir", Flag::CacheDir),
    ("strict", Flag::Strict),
    ("read-only", Flag::ReadOnly),
    ("verbose", Flag::Verbose),
    ("env", Flag::Env),
    ("all-env", Flag::AllEnv),
    ("input", Flag::Input),
    ("no-ignore", Flag::NoIgnore),
    ("output", Flag::Output),
    ("stdin", Flag::Stdin),
    ("key", Flag::Key),
    ("name", Flag::Name),
    ("no-cwd", Flag::NoCwd),
    ("no-program", Flag::NoProgram),
    ("stale-after", Flag::StaleAfter),
    ("max-age", Flag::MaxAge),
    ("next-time", Flag::NextTime),
    ("stale-if-error", Flag::StaleIfError),
    ("overwrite", Flag::Overwrite),
    ("skip-cache", Flag::SkipCache),
    ("cache-exit-codes", Flag::CacheExitCodes),
    ("cache-failures", Flag::CacheFailures),
    ("no-empty", Flag::NoEmpty),
    ("entry-size-limit", Flag::EntrySizeLimit),
    ("cleanup-stale", Flag::CleanupStale),
    ("wait-for-calc-timeout", Flag::WaitForCalcTimeout),
    ("refresh", Flag::Refresh),
];

impl Flag {
    fn named(name: &str) -> Option<Flag> {
        if let Some(&(_, flag)) = NAMES.iter().find(|(n, _)| *n == name) {
            return Some(flag);
        }
        registry::params()
            .position(|p| p.flag == Some(name))
            .map(Flag::Param)
    }

    /// Whether clap takes the flag before the subcommand too.
    fn is_global(self) -> bool {
        matches!(
            self,
            Flag::Backend
                | Flag::Tier
                | Flag::CacheDir
                | Flag::Param(_)
                | Flag::Strict
                | Flag::ReadOnly
                | Flag::Verbose
        )
    }

    fn is_bool(self) -> bool {
        !matches!(
            self,
            Flag::Backend
                | Flag::Tier
                | Flag::CacheDir
                | Flag::Param(_)
                | Flag::Env
                | Flag::Input
                | Flag::Output
                | Flag::Key
                | Flag::Name
                | Flag::StaleAfter
                | Flag::MaxAge
                | Flag::StaleIfError
                | Flag::CacheExitCodes
                | Flag::EntrySizeLimit
                | Flag::WaitForCalcTimeout
        )
    }
}

#[cfg(test)]
#[path = "lean_tests.rs"]
mod tests;
