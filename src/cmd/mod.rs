//! One module per subcommand; `dispatch` picks the one the user asked for.
mod key;
mod run;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::error::Exit;
use crate::settings::Settings;

pub fn dispatch(cli: Cli) -> Result<u8> {
    let settings = Settings::resolve(&cli.global)?;
    match cli.command {
        Command::Run(args) => run::run(&settings, args),
        Command::Key(args) => key::run(&settings, &args),
        _ => Err(Exit::failed("this subcommand is being built")),
    }
}
