//! The backends' own flags (`--redis-url`, `--max-memory`, ...), made from
//! the registry's params: a new backend's flags need no line in `cli.rs`.
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};

use crate::store::param::Kind;
use crate::store::registry;
use crate::units::{parse_duration, parse_size};

/// The values given to backend flags, by config key (`redis_url`).
#[derive(Debug, Clone, Default)]
pub struct BackendFlags {
    values: Vec<(&'static str, String)>,
}

impl BackendFlags {
    /// The text given to the flag of the param with config key `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The values given, by config key, in registry order (as clap's parse
    /// leaves them): for the lean parse of `run`.
    pub(crate) fn from_values(mut values: Vec<(&'static str, String)>) -> Self {
        values.sort_by_key(|&(key, _)| registry::params().position(|p| p.key == key));
        BackendFlags { values }
    }
}

impl FromArgMatches for BackendFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = BackendFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for p in registry::params().filter(|p| p.flag.is_some()) {
            if let Ok(Some(value)) = matches.try_get_one::<String>(p.key) {
                self.values.retain(|(k, _)| *k != p.key);
                self.values.push((p.key, value.clone()));
            }
        }
        Ok(())
    }
}

impl Args for BackendFlags {
    fn augment_args(cmd: Command) -> Command {
        let flags = registry::params().filter_map(|p| Some((p, p.flag?)));
        flags.fold(cmd, |cmd, (p, flag)| {
            let arg = Arg::new(p.key)
                .long(flag)
                .global(true)
                .value_name(p.value_name)
                .help(p.help);
            // Checked as they parse, so a bad size is clap's usage error;
            // kept as text, which the settings parse again with its source.
            let arg = match p.kind {
                Kind::Text => arg,
                Kind::Size => arg.value_parser(|s: &str| parse_size(s).map(|_| s.to_string())),
                Kind::Duration => {
                    arg.value_parser(|s: &str| parse_duration(s).map(|_| s.to_string()))
                }
            };
            cmd.arg(arg)
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        BackendFlags::augment_args(cmd)
    }
}
