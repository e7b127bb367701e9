//! Conformance cases: Managing entries: clear, ls, show, precache, stats --reset, gc, clean-up.
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use super::*;
use crate::harness::*;

pub(super) fn clear_by_filter_or_command_line(env: &Env) {
    for text in ["a", "b", "c"] {
        env.run_sh(&["--name", "one"], &counted(text))
            .assert()
            .code(0);
    }
    env.run_sh(&["--name", "two"], &counted("d"))
        .assert()
        .code(0);
    env.run_sh(&["--name", "two"], &counted("e"))
        .assert()
        .code(0);
    assert_eq!(env.count_entries(), 5);
    // The entry one command line would hit, with the same key options.
    let mut args = vec!["clear", "--name", "one", "--", "sh", "-c"];
    let script = counted("a");
    args.push(&script);
    env.cachier(&args).assert().code(0).stdout(removed(env, 1));
    assert_eq!(env.count_entries(), 4);
    // By key prefix, as `ls` shows it.
    let listed = env.json(&["ls", "--json", "--name", "two"]);
    let key = listed[0]["key"].as_str().unwrap()[..10].to_string();
    env.cachier(&["clear", "--key", &key])
        .assert()
        .code(0)
        .stdout(removed(env, 1));
    env.cachier(&["clear", "--key", &key])
        .assert()
        .code(0)
        .stdout(removed(env, 0));
    env.cachier(&["clear", "--key", "xyz"])
        .assert()
        .code(2)
        .stdout("");
    // By age: nothing is older than an hour until it is aged.
    env.cachier(&["clear", "--older-than", "1h"])
        .assert()
        .code(0)
        .stdout(removed(env, 0));
    env.cachier(&["clear", "--stale"])
        .assert()
        .code(2)
        .stdout("");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(7200));
    env.run_sh(&["--name", "one"], &counted("fresh"))
        .assert()
        .code(0);
    env.cachier(&["clear", "--stale", "--stale-after", "1h", "--name", "two"])
        .assert()
        .code(0)
        .stdout(removed(env, 1));
    env.cachier(&["clear", "--older-than", "1h"])
        .assert()
        .code(0)
        .stdout(removed(env, 2));
    assert_eq!(env.count_entries(), 1);
    env.cachier(&["clear", "--being-calculated"])
        .assert()
        .code(0)
        .stdout("removed 0 entries (0 B); wiped 0 leftover claims\n");
    assert_eq!(env.count_entries(), 1);
    env.cachier(&["clear"])
        .assert()
        .code(0)
        .stdout(removed(env, 1));
    assert_eq!(env.count_entries(), 0);
    assert_eq!(env.stat("total", "entries"), 0);
    assert_eq!(env.stat("total", "bytes"), 0);
}

pub(super) fn ls_and_show_report_entries(env: &Env) {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(b"\xff\x00end");
    std::fs::write(env.path("blob"), &bytes).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat blob; printf 'err\\000bytes' >&2; exit 3";
    env.run_sh(&["--cache-exit-codes", "3"], script)
        .assert()
        .code(3);
    env.run_sh(&["--cache-exit-codes", "3"], script)
        .assert()
        .code(3);
    let listed = env.json(&["ls", "--json"]);
    let item = &listed[0];
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(item["namespace"], "sh");
    assert_eq!(item["argv"], serde_json::json!(["sh", "-c", script]));
    assert_eq!(item["exit_code"], 3);
    assert_eq!(item["hits"], 1);
    let key = item["key"].as_str().unwrap();
    assert_eq!(key.len(), 64);
    let out = env
        .cachier(&["show", &key[..8], "--stdout"])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), out.stdout), (Some(0), bytes));
    env.cachier(&["show", key, "--stderr"])
        .assert()
        .code(0)
        .stdout(&b"err\0bytes"[..]);
    let meta = env.json(&["show", key, "--json"]);
    assert_eq!(
        (
            meta["key"].as_str(),
            meta["exit_code"].as_i64(),
            meta["stderr_bytes"].as_u64()
        ),
        (Some(key), Some(3), Some(9))
    );
    let table = env.stdout(&["ls"]);
    assert!(
        table.starts_with("KEY  ") && table.lines().nth(1).unwrap().starts_with(&key[..12]),
        "{table}"
    );
    env.cachier(&["show", "0000000000"])
        .assert()
        .code(2)
        .stdout("");
}

pub(super) fn precache_is_served_by_run(env: &Env) {
    std::fs::write(env.path("out"), b"given\x00stdout").unwrap();
    std::fs::write(env.path("err"), b"given stderr\n").unwrap();
    let script = counted("never");
    let mut args = vec![
        "precache",
        "--stdout",
        "out",
        "--stderr",
        "err",
        "--exit-code",
        "4",
        "--",
        "sh",
        "-c",
    ];
    args.push(&script);
    let key = env
        .cachier(&args)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(key.len(), 65);
    env.run_sh(&["--cache-exit-codes", "4"], &script)
        .assert()
        .code(4)
        .stdout(&b"given\x00stdout"[..])
        .stderr("given stderr\n");
    assert_eq!(env.runs(), 0, "the command never ran");
}

pub(super) fn stats_reset_keeps_entries(env: &Env) {
    let script = counted("r");
    env.run_sh(&[], &script).assert().code(0);
    env.run_sh(&[], &script).assert().code(0);
    env.cachier(&["stats", "--reset"]).assert().code(0);
    assert_eq!(
        (
            env.stat("sh", "hits"),
            env.stat("sh", "misses"),
            env.stat("sh", "entries")
        ),
        (0, 0, 1)
    );
    env.run_sh(&[], &script).assert().code(0);
    assert_eq!(env.stat("sh", "hits"), 1);
}

pub(super) fn gc_evicts_least_recently_used(env: &Env) {
    for text in ["one", "two", "three"] {
        env.run_sh(&[], &counted(text)).assert().code(0);
    }
    env.run_sh(&[], &counted("one")).assert().stdout("one");
    let sizes: u64 = env
        .json(&["ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["size"].as_u64().unwrap())
        .sum();
    let cap = (sizes - 1).to_string();
    let out = env
        .cachier(&["gc", "--max-size", &cap])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .starts_with("evicted 1 entry (")
    );
    let left: Vec<String> = env
        .json(&["ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["argv"][2].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left,
        [counted("three"), counted("one")],
        "the oldest unused entry went"
    );
    env.cachier(&["gc"])
        .assert()
        .code(0)
        .stdout(predicates::str::starts_with(
            "swept leftovers; no max_size is set",
        ));
}

pub(super) fn a_store_over_max_size_is_collected_in_the_background(env: &Env) {
    env.run_sh(&[], &counted("big"))
        .env("CACHIER_MAX_SIZE", "1")
        .assert()
        .code(0)
        .stdout("big");
    await_until("the background gc empties the store", || {
        env.count_entries() == 0
    });
}

pub(super) fn cleanup_stale_clears_the_namespace_in_the_background(env: &Env) {
    // Both stored (no warning), or there is nothing to age.
    env.run_sh(&[], &counted("old"))
        .assert()
        .code(0)
        .stdout("old")
        .stderr("");
    env.run_sh(&["--name", "elsewhere"], &counted("other"))
        .assert()
        .code(0)
        .stdout("other")
        .stderr("");
    env.backend
        .age_entries(env.dir.path(), Duration::from_secs(7200));
    let flags = ["--cleanup-stale", "--stale-after", "1h"];
    env.run_sh(&flags, &counted("new"))
        .assert()
        .code(0)
        .stdout("new");
    await_until("the stale entry is cleared", || env.count_entries() == 2);
    let left: Vec<String> = env
        .json(&["ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["sh", "elsewhere"]);
}
