//! Conformance cases: `--stale-if-error`. With a stale entry ready, the
//! command's output is held back: the caller sees the fresh result or the
//! stale one, never a mix; a signal is not hidden; waiters behind a failed
//! owner get the stale entry without running the command again.
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

/// Prints `out`'s text on stdout, then on stderr, and exits with `code`'s
/// (or kills itself with SIGTERM when it says `kill`).
const SCRIPT: &str = "echo $$ >> \"$COUNT\"; printf '%s\\n' \"$(cat out)\"; \
    printf 'err %s\\n' \"$(cat out)\" >&2; c=\"$(cat code)\"; \
    [ \"$c\" = kill ] && kill -TERM $$; exit \"$c\"";

fn set(env: &Env, out: &str, code: &str) {
    std::fs::write(env.path("out"), out).unwrap();
    std::fs::write(env.path("code"), code).unwrap();
}

/// A stored entry of `script` printing `old`, two hours old (stale past
/// one hour); its short key.
fn stale_entry(env: &Env, script: &str) -> String {
    set(env, "old", "0");
    env.run_sh(&["--stale-after", "1h"], script)
        .assert()
        .code(0)
        .stdout("old\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    let key = env.stdout(&["key", "--", "sh", "-c", script]);
    key.trim()[..12].to_string()
}

pub(super) fn stale_if_error_serves_the_stale_entry_only_when_the_command_fails(env: &Env) {
    let key = stale_entry(env, SCRIPT);
    let flags = ["--stale-after", "1h", "--stale-if-error"];
    // Fails: the stale result whole, not a byte of the failed run's.
    set(env, "new", "3");
    env.run_sh(&flags, SCRIPT).assert().code(0).stdout("old\n").stderr(format!(
        "cachier: warning: the command failed (exit 3); served the stale entry {key} from 2h ago instead (--stale-if-error)\nerr old\n"
    ));
    // A bound younger than the entry, or --max-age: the failure stands.
    for extra in [
        &["--stale-if-error=1h"][..],
        &["--stale-if-error", "--max-age", "90m"],
    ] {
        let mut bounded = vec!["--stale-after", "1h"];
        bounded.extend_from_slice(extra);
        env.run_sh(&bounded, SCRIPT)
            .assert()
            .code(3)
            .stdout("new\n")
            .stderr("err new\n");
    }
    // A signal is not papered over: 128+N, with the run's own output.
    set(env, "new", "kill");
    env.run_sh(&flags, SCRIPT)
        .assert()
        .code(128 + 15)
        .stdout("new\n")
        .stderr("err new\n");
    // Succeeds: the fresh result whole, and stored.
    set(env, "new", "0");
    for _ in 0..2 {
        env.run_sh(&flags, SCRIPT)
            .assert()
            .code(0)
            .stdout("new\n")
            .stderr("err new\n");
    }
    assert_eq!(env.runs(), 6);
}

pub(super) fn waiters_behind_a_failed_owner_get_the_stale_entry(env: &Env) {
    let script = format!("echo $$ >> \"$COUNT\"; {}; {SCRIPT}", until_go());
    touch(&env.path("go"));
    let key = stale_entry(env, &script);
    std::fs::remove_file(env.path("go")).unwrap();
    set(env, "new", "3");
    let flags = ["-v", "--stale-after", "1h", "--stale-if-error"];
    let owner = env
        .run_sh(&flags, &script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each run counts twice, once before it blocks: the entry's made 2.
    await_until("the owner runs the command", || env.runs() == 3);
    let (waiter, lines) = spawn_watching_stderr(env.run_sh(&flags, &script));
    expect_line(&lines, "waiting for");
    touch(&env.path("go"));
    let owner = wait_within(owner, Duration::from_secs(30));
    let waiter = wait_within(waiter, Duration::from_secs(30));
    assert_eq!(
        (owner.status.code(), &owner.stdout[..]),
        (Some(0), &b"old\n"[..])
    );
    assert_eq!(
        (waiter.status.code(), &waiter.stdout[..]),
        (Some(0), &b"old\n"[..])
    );
    let said: Vec<String> = lines.iter().collect();
    let served = format!(
        "cachier: warning: the run this call waited for stored nothing; served the stale entry {key} from 2h ago (--stale-if-error)"
    );
    assert!(said.contains(&served), "{said:?}");
    assert_eq!(env.runs(), 4, "the owner ran it once; the waiter did not");
}

/// The stale entry is served whole: its `--output` files too, over what
/// the failed run left in their place.
pub(super) fn stale_if_error_restores_the_stale_entrys_outputs(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; mkdir -p dist; cat out > dist/result; \
        cat out; exit \"$(cat code)\"";
    set(env, "old", "0");
    let flags = ["--stale-after", "1h", "--output", "dist"];
    env.run_sh(&flags, script).assert().code(0).stdout("old");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    set(env, "new", "3");
    let flags = [
        "--stale-after",
        "1h",
        "--output",
        "dist",
        "--stale-if-error",
    ];
    env.run_sh(&flags, script).assert().code(0).stdout("old");
    assert_eq!(std::fs::read(env.path("dist/result")).unwrap(), b"old");
    assert_eq!(env.runs(), 2);
}
