//! cachier memoizes shell commands: `cachier run -- CMD` replays a stored
//! result when the same command line ran before with the same inputs.
// Nothing a user, the disk or a server hands us may panic: no unwrap or
// expect outside tests (release builds abort on a panic).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

mod backend_flags;
mod background;
pub mod cli;
mod cmd;
mod config;
mod dump;
mod entry;
mod error;
mod exec;
/// For the fuzz targets in `fuzz/` only.
#[doc(hidden)]
pub mod fuzzing;
mod held;
mod human;
mod key;
mod lean;
mod outputs;
mod private;
mod replay;
mod settings;
mod sign;
mod signals;
mod stamp;
#[doc(hidden)]
pub mod startup;
mod store;
mod units;
mod version;
mod wait;
mod warn;
mod watch;

/// Parse `args`, run the subcommand and turn the outcome into an exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    ExitCode::from(exit_code(&args.into_iter().collect::<Vec<_>>()))
}

/// [`run`], as the number the process exits with.
fn exit_code(args: &[OsString]) -> u8 {
    // The common `run` line skips building clap's tree; clap parses the rest.
    let parsed = lean::parse(args).map_or_else(|| cli::Cli::try_parse_from(args), Ok);
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => return usage_error(&e),
    };
    match cmd::dispatch(cli) {
        Ok(code) => code,
        // A reader that went away (`cachier ls | head -1`) is not an error:
        // exit quietly, as a command killed by SIGPIPE would.
        Err(err) if error::is_broken_pipe(&err) => error::BROKEN_PIPE,
        Err(err) => {
            warn::line(&format!("{err:#}"));
            error::code_of(&err)
        }
    }
}

/// A command line clap refused: exit 2 with its whole message on one line,
/// or, for `cachier` alone, the usage.
fn usage_error(e: &clap::Error) -> u8 {
    let text = e.render().to_string();
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        use std::io::Write;
        let _ = write!(std::io::stderr().lock(), "{text}");
    } else {
        warn::line(&format!("{} (see --help)", one_line(&text)));
    }
    error::USAGE
}

/// clap's message up to its usage block, folded onto one line: the error,
/// what it names on the following lines, and its tip.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if line.starts_with("tip:") { "; " } else { " " });
        }
        out.push_str(line.trim_start_matches("error: "));
    }
    out
}
