//! Detached background work (the `--next-time` refresh, `--cleanup-stale`,
//! gc past max_size): a re-exec of cachier in its own session, its stdio on
//! `/dev/null` and no other descriptors, so the caller exits at once and
//! `$(...)` does not wait for it.
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::settings::Settings;

/// Start `cachier run --refresh ...` with the caller's own arguments.
/// `stdin` is the spooled `--stdin` input, if the key used it.
pub fn spawn_refresh(stdin: Option<File>) -> Result<()> {
    spawn(
        refresh_args(crate::startup::args().into_iter().skip(1).collect()),
        stdin,
        &[],
    )
}

/// Start `cachier ARGS` against the same store as this process.
pub fn spawn_cachier(settings: &Settings, args: &[&str]) -> Result<()> {
    let stack: Vec<&str> = settings.tiers.iter().map(|t| t.backend.name()).collect();
    let mut full: Vec<OsString> = vec![
        "--backend".into(),
        stack.join(",").into(),
        "--cache-dir".into(),
    ];
    full.push(settings.cache_dir.clone().into_os_string());
    full.extend(args.iter().map(OsString::from));
    // The servers flags chose go by environment, not argv, so no password
    // shows in `ps`.
    spawn(full, None, &server_env(settings))
}

/// The variables that give a child cachier the same backend settings (its
/// flags' values included).
fn server_env(settings: &Settings) -> Vec<(&'static str, String)> {
    settings
        .sections
        .iter()
        .flat_map(|(_, section)| &section.given)
        .map(|g| (g.var, g.value.to_env()))
        .collect()
}

fn spawn(args: Vec<OsString>, stdin: Option<File>, env: &[(&str, String)]) -> Result<()> {
    let stdin = stdin.map_or_else(Stdio::null, Stdio::from);
    spawn_with(args, stdin, Stdio::null(), env)?;
    Ok(())
}

/// Start `cachier ARGS` (the memory daemon) detached like other background
/// work, except that its stdout is `ready`, a pipe it reports on.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // the memory daemon is Linux-only
pub fn spawn_daemon(args: &[&str], ready: File, env: &[(&str, String)]) -> Result<()> {
    let args = args.iter().map(OsString::from).collect();
    spawn_with(args, Stdio::null(), Stdio::from(ready), env)
}

fn spawn_with(
    args: Vec<OsString>,
    stdin: Stdio,
    stdout: Stdio,
    env: &[(&str, String)],
) -> Result<()> {
    let exe = std::env::current_exe()
        .context("cannot find the cachier executable for background work")?;
    close_inherited_on_exec();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::null());
    for (name, value) in env {
        cmd.env(name, value);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
    }
    cmd.spawn().context("cannot start background work")?;
    Ok(())
}

/// The caller's arguments with `--refresh` right after the `run` subcommand.
fn refresh_args(mut args: Vec<OsString>) -> Vec<OsString> {
    let takes_value = global_value_flags();
    let mut i = 0;
    while i < args.len() {
        match args[i].to_str() {
            Some(flag) if takes_value.iter().any(|f| f == flag) => i += 2,
            Some("run") => {
                args.insert(i + 1, "--refresh".into());
                break;
            }
            _ => i += 1,
        }
    }
    args
}

/// The global flags that take a value (`--backend`, `--redis-url`, ...),
/// from the command-line definition itself.
fn global_value_flags() -> Vec<String> {
    use clap::CommandFactory;
    crate::cli::Cli::command()
        .get_arguments()
        .filter(|a| a.is_global_set() && a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(|long| format!("--{long}")))
        .collect()
}

/// Descriptors our own parent left open without close-on-exec must not reach
/// the background process (it would keep a caller's pipe open).
fn close_inherited_on_exec() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: only flags of a descriptor number are changed; a number
        // that is no longer open makes the call fail harmlessly.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_global_flag_with_a_value_is_known() {
        let flags = global_value_flags();
        for flag in [
            "--backend",
            "--tier",
            "--cache-dir",
            "--sql-url",
            "--redis-url",
            "--max-memory",
        ] {
            assert!(flags.iter().any(|f| f == flag), "{flag} in {flags:?}");
        }
        assert!(!flags.iter().any(|f| f == "--strict"));
        let args = ["--tier", "run", "run", "--", "echo"]
            .map(OsString::from)
            .to_vec();
        let want = ["--tier", "run", "run", "--refresh", "--", "echo"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(refresh_args(args), want);
    }

    #[test]
    fn refresh_flag_follows_the_subcommand() {
        let args = ["--cache-dir", "run", "run", "--", "echo"]
            .map(OsString::from)
            .to_vec();
        let want = ["--cache-dir", "run", "run", "--refresh", "--", "echo"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(refresh_args(args), want);
    }
}
