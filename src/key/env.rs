//! Environment components of the key: `--env NAME` (with globs) and `--all-env`.
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use anyhow::Result;

use super::{Component, component};
use crate::error::Exit;

/// Variables `--all-env` leaves out: they change between shells and terminals
/// without changing what a command computes.
pub const VOLATILE: &[&str] = &[
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "COLUMNS",
    "LINES",
    "TERM_SESSION_ID",
    "WINDOWID",
    "SSH_CLIENT",
    "SSH_CONNECTION",
    "SSH_TTY",
    "SSH_AUTH_SOCK",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "XDG_SESSION_ID",
    "XDG_SESSION_COOKIE",
    "DBUS_SESSION_BUS_ADDRESS",
    "GPG_TTY",
    "PS1",
    "PS2",
    "PROMPT_COMMAND",
    "HISTFILE",
    "SECURITYSESSIONID",
    "KITTY_WINDOW_ID",
    "WEZTERM_PANE",
    "ALACRITTY_WINDOW_ID",
    "VTE_VERSION",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
];

/// Add one component per variable named or matched. A literal name that is
/// unset is recorded as unset, which differs from set-to-empty; a glob also
/// records the list of names it matched.
pub fn components(patterns: &[String], all: bool, parts: &mut Vec<Component>) -> Result<()> {
    if patterns.is_empty() && !all {
        return Ok(());
    }
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    vars.sort();
    from_vars(patterns, all, &vars, |name| std::env::var_os(name), parts)
}

/// [`components`] over `vars` (sorted), with `lookup` reading one variable.
pub fn from_vars(
    patterns: &[String],
    all: bool,
    vars: &[(OsString, OsString)],
    lookup: impl Fn(&str) -> Option<OsString>,
    parts: &mut Vec<Component>,
) -> Result<()> {
    let mut names: Vec<String> = Vec::new();
    for pattern in patterns {
        if is_glob(pattern) {
            let glob = glob::Pattern::new(pattern)
                .map_err(|e| Exit::usage(format!("--env `{pattern}` is not a valid glob: {e}")))?;
            let matched: Vec<String> = vars
                .iter()
                .map(|(n, _)| n.to_string_lossy().into_owned())
                .filter(|n| glob.matches(n))
                .collect();
            parts.push(component(
                &format!("env {pattern}"),
                &matched,
                matched.join(" "),
            ));
            names.extend(matched);
        } else {
            names.push(pattern.clone());
        }
    }
    if all {
        let all_names: Vec<String> = vars
            .iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .filter(|n| !VOLATILE.contains(&n.as_str()) && !n.starts_with("CACHIER_"))
            .collect();
        parts.push(component(
            "all-env",
            &all_names,
            format!("{} variables", all_names.len()),
        ));
        names.extend(all_names);
    }
    names.sort();
    names.dedup();
    for name in names {
        let value = lookup(&name);
        let bytes = value.as_ref().map(|v| v.as_bytes());
        let shown = if value.is_some() {
            "set (value hashed)"
        } else {
            "unset"
        };
        parts.push(component(
            &format!("env {name}"),
            &(name.as_str(), bytes),
            shown.into(),
        ));
    }
    Ok(())
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}
