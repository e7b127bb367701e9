//! The memory daemon under faults: killed mid-run, a crashed daemon's
//! socket, a daemon of another version, a client that sends garbage; and
//! its memory cap (pass-through of a too large entry, LRU eviction).
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::assert::OutputAssertExt;

use crate::backend::Backend;
use crate::backend::memory::{alive, daemon, daemon_dir, daemon_pid, kill_and_reap, status};
use crate::harness::*;

fn env() -> Env {
    Env::new(Backend::Memory)
}

#[test]
fn a_daemon_killed_mid_run_costs_one_warning() {
    let env = env();
    env.cachier(&["daemon", "start"]).assert().code(0);
    let pid = daemon_pid(env.dir.path()).unwrap();
    let script = format!(
        "echo $$ >> \"$COUNT\"; printf 'before\\n'; {}; printf 'after\\n'; exit 3",
        until_go()
    );
    let child = env
        .run_sh(&["--cache-failures"], &script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    await_until("the command runs", || env.runs() == 1);
    kill_and_reap(pid);
    touch(&env.path("go"));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"before\nafter\n");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one warning: {stderr}");
    assert!(stderr.starts_with("cachier: warning: "), "{stderr}");
    // The next run starts a new daemon (the entries went with the old one).
    for _ in 0..2 {
        env.run_sh(&["--cache-failures"], &script)
            .assert()
            .code(3)
            .stdout("before\nafter\n")
            .stderr("");
    }
    assert_eq!(env.runs(), 2);
    assert_ne!(daemon_pid(env.dir.path()), Some(pid));
}

#[test]
fn a_crashed_daemons_socket_is_replaced() {
    let env = env();
    env.run_sh(&[], &counted("x")).assert().stdout("x");
    let pid = daemon_pid(env.dir.path()).unwrap();
    kill_and_reap(pid);
    assert!(daemon_dir(env.dir.path()).join("memory.sock").exists());
    for _ in 0..2 {
        env.run_sh(&[], &counted("x"))
            .assert()
            .stdout("x")
            .stderr("");
    }
    assert_eq!(env.runs(), 2);
    let new = daemon_pid(env.dir.path()).unwrap();
    assert_ne!(new, pid);
    assert!(alive(new));
}

#[test]
fn a_daemon_of_another_version_is_refused_and_replaced() {
    let env = env();
    env.run_sh(&[], &counted("x")).assert().stdout("x");
    let old = daemon_pid(env.dir.path()).unwrap();
    daemon(env.dir.path(), &["status"])
        .env("CACHIER_TEST_PROTOCOL_BUMP", "1")
        .assert()
        .code(125)
        .stderr(predicates::str::contains("refuses a client of cachier"));
    let out = env
        .run_sh(&["--verbose"], &counted("x"))
        .env("CACHIER_TEST_PROTOCOL_BUMP", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"x");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("restarting the daemon"), "{stderr}");
    assert!(!alive(old), "the old daemon was stopped");
    let new = daemon_pid(env.dir.path()).unwrap();
    assert_ne!(new, old);
    assert_eq!(env.runs(), 2, "the new daemon starts empty");
}

#[test]
fn a_client_sending_garbage_is_cut_off_alone() {
    let env = env();
    env.run_sh(&[], &counted("x")).assert().stdout("x");
    let socket = daemon_dir(env.dir.path()).join("memory.sock");
    for garbage in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        &[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(garbage).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the daemon hung up without a word");
    }
    env.run_sh(&[], &counted("x"))
        .assert()
        .stdout("x")
        .stderr("");
    assert_eq!(env.runs(), 1, "still a hit");
}

#[test]
fn an_entry_larger_than_max_memory_passes_through() {
    let env = env();
    let big = "y".repeat(4096);
    for _ in 0..2 {
        env.run_sh(&["--max-memory", "1K"], &counted(&big))
            .assert()
            .code(0)
            .stdout(big.clone())
            .stderr("");
    }
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 0);
}

#[test]
fn uploads_in_progress_together_stay_under_max_memory() {
    let env = env();
    let dir = env.dir.path();
    // Each prints 800 KiB, then waits for its own go file: two at once
    // would hold more than the 1 MiB cap.
    let script = |go: &str| {
        format!(
            "head -c 819200 /dev/zero | tr '\\0' a; echo $$ >> \"$COUNT\"; \
             while [ ! -e {go} ]; do sleep 0.01; done"
        )
    };
    let a = env
        .run_sh(&["--max-memory", "1M"], &script("go-a"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    await_until("a's output is in the daemon", || {
        status(dir).is_some_and(|s| s["uploading"].as_u64() >= Some(768 * 1024))
    });
    // b runs whole while a's upload is in progress: passed through.
    touch(&env.path("go-b"));
    let out = env
        .run_sh(&["--max-memory", "1M"], &script("go-b"))
        .output()
        .unwrap();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 819200));
    assert_eq!(out.stderr, b"");
    assert_eq!(status(dir).unwrap()["entries"], 0, "b was not stored");
    touch(&env.path("go-a"));
    assert_eq!(a.wait_with_output().unwrap().status.code(), Some(0));
    assert_eq!(env.count_entries(), 1, "only a was stored");
    assert_eq!(status(dir).unwrap()["uploading"], 0);
}

#[test]
fn least_recently_used_entries_go_first_under_max_memory() {
    let env = env();
    let dir = env.dir.path();
    let text = |c: char| c.to_string().repeat(500);
    env.run_sh(&[], &counted(&text('a'))).assert().code(0);
    let size = status(dir).unwrap()["bytes"].as_u64().unwrap();
    daemon(dir, &["stop"]).assert().code(0);
    // Room for two entries, not three.
    let cap = (size * 5 / 2).to_string();
    let run = |c: char| {
        env.run_sh(&["--max-memory", &cap], &counted(&text(c)))
            .assert()
            .code(0)
            .stdout(text(c));
    };
    run('a');
    run('b');
    run('a'); // a hit: now b is the least recently used
    assert_eq!(env.runs(), 3);
    run('c');
    assert_eq!(env.count_entries(), 2);
    run('a');
    assert_eq!(env.runs(), 4, "a stayed");
    run('b');
    assert_eq!(env.runs(), 5, "b was evicted");
}

#[test]
fn a_damaged_large_entry_is_discarded_and_recomputed() {
    // Larger than what comes inline: the body is the daemon's sealed memfd.
    let script = "echo $$ >> \"$COUNT\"; head -c 300000 /dev/zero | tr '\\0' x";
    for truncate in [false, true] {
        let env = env();
        env.run_sh(&[], script).assert().code(0);
        env.run_sh(&[], script).assert().code(0);
        assert_eq!(env.runs(), 1);
        crate::backend::memory::damage_entries(env.dir.path(), truncate);
        let out = env.run_sh(&[], script).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(out.stdout, vec![b'x'; 300_000]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("corrupt"), "{stderr}");
        assert_eq!(env.runs(), 2);
    }
}
