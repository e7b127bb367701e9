//! cachier memoizes shell commands: `cachier run -- CMD` replays a stored
//! result when the same command line ran before with the same inputs.
use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

mod background;
pub mod cli;
mod cmd;
mod config;
mod daemon;
mod dump;
mod entry;
mod error;
mod exec;
/// For the fuzz targets in `fuzz/` only.
#[doc(hidden)]
pub mod fuzzing;
mod human;
mod key;
mod replay;
mod settings;
mod signals;
mod store;
mod units;
mod wait;
mod warn;

/// Parse `args`, run the subcommand and turn the outcome into an exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // One line: clap's first line, without its "error: " prefix.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            warn::line(&format!(
                "{} (see --help)",
                first.trim_start_matches("error: ")
            ));
            return ExitCode::from(error::USAGE);
        }
    };
    match cmd::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        // A reader that went away (`cachier ls | head -1`) is not an error:
        // exit quietly, as a command killed by SIGPIPE would.
        Err(err) if error::is_broken_pipe(&err) => ExitCode::from(error::BROKEN_PIPE),
        Err(err) => {
            warn::line(&format!("{err:#}"));
            ExitCode::from(error::code_of(&err))
        }
    }
}
