//! Conformance cases: Misses and hits: bytes, codes, order, what is stored, stdin.
use std::fs::File;

use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

pub(super) fn miss_then_hit_replays_bytes_and_code(env: &Env) {
    let script = format!("{}; printf 'to stderr\\n' >&2; exit 0", counted("hello\n"));
    for _ in 0..2 {
        env.run_sh(&[], &script)
            .assert()
            .code(0)
            .stdout("hello\n")
            .stderr("to stderr\n");
    }
    assert_eq!(env.runs(), 1);
    let script = format!("{}; exit 4", counted("four"));
    for _ in 0..2 {
        env.run_sh(&["--cache-failures"], &script)
            .assert()
            .code(4)
            .stdout("four")
            .stderr("");
    }
    assert_eq!(env.runs(), 2);
}

pub(super) fn every_byte_value_round_trips(env: &Env) {
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 700).collect();
    bytes.extend_from_slice(b"\xff\xfe\x00not utf-8 \xc3\x28");
    std::fs::write(env.path("blob"), &bytes).unwrap();
    let script = "echo $$ >> \"$COUNT\"; cat blob; cat blob >&2";
    for _ in 0..2 {
        let out = env.run_sh(&[], script).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout == bytes, "stdout differs");
        assert!(out.stderr == bytes, "stderr differs");
    }
    assert_eq!(env.runs(), 1);
}

pub(super) fn order_is_kept_when_streams_share_a_file(env: &Env) {
    // The pauses let each piece reach cachier before the next is written:
    // two pipes cannot tell the order of writes that arrive together.
    let script = "echo $$ >> \"$COUNT\"; printf 'a\\n'; sleep 0.1; printf 'b\\n' >&2; sleep 0.1; printf 'c\\n'";
    for round in 0..2 {
        let path = env.path(&format!("both{round}"));
        let file = File::create(&path).unwrap();
        let status = env
            .run_sh(&[], script)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a\nb\nc\n",
            "round {round}"
        );
    }
    assert_eq!(env.runs(), 1);
}

pub(super) fn failures_are_not_cached_by_default(env: &Env) {
    let script = format!("{}; echo oops >&2; exit 3", counted("partial"));
    for _ in 0..2 {
        env.run_sh(&[], &script)
            .assert()
            .code(3)
            .stdout("partial")
            .stderr("oops\n");
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
}

pub(super) fn cache_exit_codes_and_cache_failures(env: &Env) {
    let script = format!("{}; exit 3", counted("three"));
    for _ in 0..2 {
        env.run_sh(&["--cache-exit-codes", "0,3"], &script)
            .assert()
            .code(3)
            .stdout("three");
    }
    assert_eq!(env.runs(), 1);
    let script = format!("{}; exit 9", counted("nine"));
    for _ in 0..2 {
        env.run_sh(&["--cache-exit-codes", "0,3"], &script)
            .assert()
            .code(9);
    }
    assert_eq!(env.runs(), 3);
}

pub(super) fn no_empty_skips_empty_stdout(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; echo only-stderr >&2";
    for _ in 0..2 {
        env.run_sh(&["--no-empty"], script)
            .assert()
            .code(0)
            .stdout("")
            .stderr("only-stderr\n");
    }
    assert_eq!(env.runs(), 2);
    for _ in 0..2 {
        env.run_sh(&[], script)
            .assert()
            .code(0)
            .stdout("")
            .stderr("only-stderr\n");
    }
    assert_eq!(env.runs(), 3);
}

pub(super) fn entry_size_limit_passes_through_unstored(env: &Env) {
    let script = counted("0123456789");
    for _ in 0..2 {
        env.run_sh(&["--entry-size-limit", "5"], &script)
            .assert()
            .code(0)
            .stdout("0123456789");
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
    env.run_sh(&["--entry-size-limit", "1K"], &script)
        .assert()
        .code(0)
        .stdout("0123456789");
    assert_eq!(env.count_entries(), 1);
}

pub(super) fn stdin_is_keyed_and_fed(env: &Env) {
    let script = "echo $$ >> \"$COUNT\"; tr a-z A-Z";
    let feed = |text: &str| {
        std::fs::write(env.path("in"), text).unwrap();
        let input = File::open(env.path("in")).unwrap();
        env.run_sh(&["--stdin"], script)
            .stdin(input)
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone()
    };
    assert_eq!(feed("abc"), b"ABC");
    assert_eq!(feed("abc"), b"ABC");
    assert_eq!(env.runs(), 1);
    assert_eq!(feed("xyz"), b"XYZ");
    assert_eq!(env.runs(), 2);
}
