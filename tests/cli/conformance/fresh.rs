//! Conformance cases: Freshness: --stale-after, --max-age, --next-time, --overwrite, --skip-cache.
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

/// A script that prints how many times it ran.
pub(super) fn numbered() -> String {
    "echo $$ >> \"$COUNT\"; wc -l < \"$COUNT\" | tr -d ' '".to_string()
}

pub(super) fn stale_entries_are_recomputed(env: &Env) {
    let script = numbered();
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("1\n");
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("2\n");
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("2\n");
    // Without --stale-after an entry never goes stale; the env var sets it too.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    env.run_sh(&[], &script).assert().stdout("2\n");
    env.run_sh(&[], &script)
        .env("CACHIER_STALE_AFTER", "1h")
        .assert()
        .stdout("3\n");
}

pub(super) fn max_age_is_a_stricter_bound(env: &Env) {
    let script = numbered();
    env.run_sh(&[], &script).assert().stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(3600));
    env.run_sh(&["--max-age", "2h"], &script)
        .assert()
        .stdout("1\n");
    env.run_sh(&["--max-age", "30m"], &script)
        .assert()
        .stdout("2\n");
    // --next-time never serves past --max-age.
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(3600));
    env.run_sh(
        &["--stale-after", "1m", "--next-time", "--max-age", "30m"],
        &script,
    )
    .assert()
    .stdout("3\n");
}

pub(super) fn next_time_serves_stale_and_refreshes_detached(env: &Env) {
    // The first run is quick; every later run blocks until `go` exists.
    let script = format!(
        "{}; n=$(wc -l < \"$COUNT\" | tr -d ' '); [ $n -gt 1 ] && {}; echo $n",
        "echo $$ >> \"$COUNT\"",
        until_go()
    );
    let flags = ["--stale-after", "1h", "--next-time"];
    env.run_sh(&flags, &script).assert().stdout("1\n");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(2 * 3600));
    // Served at once, and the caller's pipe closes although the refresh still
    // runs: it holds none of the caller's descriptors.
    let out = output_within(env.run_sh(&flags, &script), Duration::from_secs(30)).0;
    assert_eq!(out.stdout, b"1\n");
    assert_eq!(out.status.code(), Some(0));
    await_until("the background refresh runs", || env.runs() == 2);
    // A second stale caller serves too, and starts no second refresh.
    let out = output_within(env.run_sh(&flags, &script), Duration::from_secs(30)).0;
    assert_eq!(out.stdout, b"1\n");
    touch(&env.path("go"));
    env.run_sh(&["--stale-after", "1h"], &script)
        .assert()
        .stdout("2\n");
    assert_eq!(env.runs(), 2);
}

pub(super) fn overwrite_recomputes_a_fresh_entry(env: &Env) {
    let script = numbered();
    env.run_sh(&[], &script).assert().stdout("1\n");
    env.run_sh(&["--overwrite"], &script).assert().stdout("2\n");
    env.run_sh(&[], &script).assert().stdout("2\n");
}

pub(super) fn skip_cache_and_disable_read_and_write_nothing(env: &Env) {
    let script = numbered();
    env.run_sh(&["--skip-cache"], &script)
        .assert()
        .stdout("1\n");
    env.run_sh(&["--skip-cache"], &script)
        .assert()
        .stdout("2\n");
    assert_eq!(env.count_entries(), 0);
    // With caching off no --input is read: a missing one is no error.
    env.run_sh(&["--input", "missing-file"], &script)
        .env("CACHIER_DISABLE", "1")
        .assert()
        .code(0)
        .stdout("3\n");
    env.run_sh(&[], &script)
        .env("CACHIER_DISABLE", "1")
        .assert()
        .stdout("4\n");
    assert_eq!(env.count_entries(), 0);
}
