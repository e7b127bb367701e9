//! The memory suite's hooks: each test gets its own runtime dir
//! (`<dir>/run`), so its own daemon; `tear_down` SIGKILLs that daemon (by
//! the pid file it writes next to its socket) and waits until it is gone,
//! so no daemon outlives the tests. Entries are aged and damaged through
//! the daemon's hidden, test-only `cachier daemon debug-age|debug-damage`.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;

/// Always: the daemon is part of cachier.
pub fn available() -> bool {
    true
}

pub fn set_up(_dir: &Path) {}

/// The runtime dir of the test in `dir`.
pub fn run_dir(dir: &Path) -> PathBuf {
    dir.join("run")
}

/// The daemon's directory (socket, pid file) of the test in `dir`.
pub fn daemon_dir(dir: &Path) -> PathBuf {
    run_dir(dir).join("cachier")
}

/// The pid of the test's daemon, from its pid file, if it wrote one.
pub fn daemon_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(daemon_dir(dir).join("memory.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether process `pid` runs (a zombie does not count).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// SIGKILL process `pid` and wait until it is gone.
pub fn kill_and_reap(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
    crate::harness::await_until("the daemon exits", || !alive(pid));
}

pub fn tear_down(dir: &Path) {
    if let Some(pid) = daemon_pid(dir) {
        kill_and_reap(pid);
    }
}

pub fn env(dir: &Path) -> Vec<(String, String)> {
    vec![
        (
            "XDG_RUNTIME_DIR".to_string(),
            run_dir(dir).display().to_string(),
        ),
        // A safety net only: tear_down kills the daemon long before.
        ("CACHIER_IDLE_TIMEOUT".to_string(), "10m".to_string()),
    ]
}

/// `cachier daemon ARGS` against the test's daemon.
pub fn daemon(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("cachier").unwrap();
    cmd.arg("daemon")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("CACHIER_CONFIG", dir.join("config.toml"));
    crate::harness::default_signals(&mut cmd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CACHIER_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env(dir) {
        cmd.env(k, v);
    }
    cmd
}

fn debug(dir: &Path, args: &[&str]) {
    let out = daemon(dir, args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn age_entries(dir: &Path, by: Duration) {
    debug(dir, &["debug-age", &by.as_millis().to_string()]);
}

pub fn damage_entries(dir: &Path, truncate: bool) {
    if truncate {
        debug(dir, &["debug-damage", "--truncate"]);
    } else {
        debug(dir, &["debug-damage"]);
    }
}

/// The daemon's `status --json`, or `None` when no daemon runs.
pub fn status(dir: &Path) -> Option<serde_json::Value> {
    let out = daemon(dir, &["status", "--json"]).output().unwrap();
    match out.status.code() {
        Some(0) => Some(serde_json::from_slice(&out.stdout).unwrap()),
        Some(3) => None,
        _ => panic!("{}", String::from_utf8_lossy(&out.stderr)),
    }
}

pub fn count_entries(dir: &Path) -> usize {
    status(dir).map_or(0, |s| s["entries"].as_u64().unwrap() as usize)
}

/// The per-user memory daemon, one per test (its own runtime dir).
pub struct Memory;

super::hooks_from_module!(Memory, "memory");
