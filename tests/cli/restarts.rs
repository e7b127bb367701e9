//! Servers restarted under cachier: Redis, PostgreSQL and the
//! MongoDB-protocol server, stopped (as a crash would) and started again by
//! the test on a server of its own (see own_server.rs), while runs are in
//! flight and between runs. Every result comes through intact (exact bytes
//! and exit codes), a failed cache step costs at most one warning, and the
//! next run after the restart uses the cache again: a hit, or a store and
//! then a hit.
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::*;
use crate::own_server::{Kind, OwnServer};

/// Every run here ends well within this.
const LIMIT: Duration = Duration::from_secs(60);

/// A command keyed by `name`: `name` on stdout, `e<name>` on stderr, exit
/// 3 (stored: the runs pass `--cache-failures`). With `hold`, it prints
/// `<name>1` first and waits for the file `go` before the rest.
fn script(name: &str, hold: bool) -> String {
    let held = if hold {
        format!("printf '{name}1\\n'; {}; ", until_go())
    } else {
        String::new()
    };
    format!("echo $$ >> \"$COUNT\"; {held}printf '{name}\\n'; printf 'e{name}\\n' >&2; exit 3")
}

/// What the command of `script(name, hold)` prints.
fn stdout_of(name: &str, hold: bool) -> String {
    if hold {
        format!("{name}1\n{name}\n")
    } else {
        format!("{name}\n")
    }
}

/// The run gave the command's exact result; returns its warning lines
/// (`--verbose` lines aside).
fn intact(out: &Output, name: &str, hold: bool) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout_of(name, hold));
    let (ours, command): (Vec<&str>, Vec<&str>) =
        stderr.lines().partition(|l| l.starts_with("cachier: "));
    assert_eq!(command, [format!("e{name}")], "{stderr}");
    ours.iter()
        .filter(|l| l.starts_with("cachier: warning: "))
        .map(|l| l.to_string())
        .collect()
}

/// `child`'s output, its stderr being the lines `lines` still holds.
fn finish(child: std::process::Child, lines: std::sync::mpsc::Receiver<String>) -> Output {
    let out = wait_within(child, LIMIT);
    let stderr = lines.iter().flat_map(|l| format!("{l}\n").into_bytes());
    Output {
        stderr: stderr.collect(),
        ..out
    }
}

struct Case<'a> {
    env: Env,
    server: OwnServer,
    backend: &'a str,
    var: &'a str,
}

impl Case<'_> {
    fn cmd(&self, flags: &[&str], name: &str, hold: bool) -> Command {
        let mut all = vec!["--cache-failures"];
        all.extend_from_slice(flags);
        let mut cmd = self.env.run_sh(&all, &script(name, hold));
        // The next run after a restart tries the server at once: no
        // outage breaker (it has its own tests, breaker.rs).
        cmd.env("CACHIER_BACKEND", self.backend)
            .env(self.var, self.server.url())
            .env("CACHIER_RETRY_AFTER", "0");
        cmd
    }

    /// One run of `name` to the end: its warnings.
    fn run(&self, name: &str) -> Vec<String> {
        let (out, _) = output_within(self.cmd(&[], name, false), LIMIT);
        intact(&out, name, false)
    }

    /// `name` is served from the cache: the command does not run again.
    fn hit(&self, name: &str) {
        let before = self.env.runs();
        assert_eq!(self.run(name), Vec::<String>::new());
        assert_eq!(self.env.runs(), before, "{name} was not a hit");
    }

    /// The next runs of `name` use the cache: this one is a hit, or a miss
    /// that stores; the one after is a hit. No warnings.
    fn uses_the_cache(&self, name: &str) {
        assert_eq!(self.run(name), Vec::<String>::new());
        self.hit(name);
    }
}

fn restarts(kind: Kind, backend: &str, var: &str) {
    let Some(server) = OwnServer::start(kind) else {
        return;
    };
    let mut case = Case {
        env: Env::file(),
        server,
        backend,
        var,
    };
    // Before: a miss stores, the next run hits.
    assert_eq!(case.run("a"), Vec::<String>::new());
    case.hit("a");

    // In flight: an owner runs its command, a waiter waits on it; the
    // server goes down and comes back; then the command ends.
    let (owner, owner_lines) = spawn_watching_stderr(case.cmd(&[], "b", true));
    await_until("the owner runs the command", || case.env.runs() == 2);
    let (waiter, waiter_lines) = spawn_watching_stderr(case.cmd(&["--verbose"], "b", true));
    expect_line(&waiter_lines, "waiting for");
    case.server.stop();
    case.server.up();
    touch(&case.env.path("go"));
    let owner = finish(owner, owner_lines);
    let waiter = finish(waiter, waiter_lines);
    // Each warns at most once; an owner whose sessions died with the
    // server warns that its entry was not stored (MongoDB's driver may
    // reconnect in time and store it).
    for (who, out) in [("owner", &owner), ("waiter", &waiter)] {
        let warnings = intact(out, "b", true);
        assert!(warnings.len() <= 1, "{who}: {warnings:?}");
        if who == "owner" && kind != Kind::Mongo {
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("cannot store cache entry"),
                "{warnings:?}"
            );
        }
    }
    // After: every key is served from the cache again.
    case.uses_the_cache("a");
    case.uses_the_cache("b");

    // Between runs: with the server down a run warns once and runs the
    // command; once it is back, the cache works again.
    case.server.stop();
    let before = case.env.runs();
    let warnings = case.run("c");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(case.env.runs(), before + 1);
    case.server.up();
    case.uses_the_cache("c");
    case.uses_the_cache("a");
}

#[test]
fn redis_restarts_leave_results_intact() {
    restarts(Kind::Redis, "redis", "CACHIER_REDIS_URL");
}

#[test]
fn postgres_restarts_leave_results_intact() {
    restarts(Kind::Postgres, "sql", "CACHIER_SQL_URL");
}

#[cfg(feature = "mongo")]
#[test]
fn mongo_restarts_leave_results_intact() {
    restarts(Kind::Mongo, "mongo", "CACHIER_MONGO_URL");
}
