//! `--read-only` on every backend and stack: hits are served; a miss runs
//! the command plainly; nothing is written (entry, counter, discard); a
//! read-only caller still waits for another process's claim.
use assert_cmd::assert::OutputAssertExt;

use crate::harness::*;

crate::backend::on_every_backend!(
    read_only_serves_hits_and_writes_nothing,
    read_only_leaves_a_corrupt_entry_in_place,
    read_only_waits_for_another_callers_claim,
);

/// The run's exit code, stdout and stderr.
fn result(out: &std::process::Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn quiet(stdout: &str) -> (Option<i32>, String, String) {
    (Some(0), stdout.to_string(), String::new())
}

pub(super) fn read_only_serves_hits_and_writes_nothing(env: &Env) {
    let out = env
        .run_sh(&["--read-only"], &counted("hi"))
        .output()
        .unwrap();
    assert_eq!(result(&out), quiet("hi"));
    assert_eq!((env.runs(), env.count_entries()), (1, 0));
    // Nothing was stored, so a writer misses too, and stores.
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    assert_eq!((env.runs(), env.count_entries()), (2, 1));
    let before = env.json(&["stats", "--json"]);
    for (flags, var) in [(&["--read-only"][..], None), (&[][..], Some("1"))] {
        let mut cmd = env.run_sh(flags, &counted("hi"));
        if let Some(v) = var {
            cmd.env("CACHIER_READ_ONLY", v);
        }
        assert_eq!(result(&cmd.output().unwrap()), quiet("hi"));
    }
    // Served twice, and not counted: the counters are as they were.
    assert_eq!(env.runs(), 2);
    assert_eq!(env.json(&["stats", "--json"]), before);
}

pub(super) fn read_only_leaves_a_corrupt_entry_in_place(env: &Env) {
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    env.backend.damage_entries(env.dir.path(), false);
    let out = env
        .run_sh(&["--read-only"], &counted("hi"))
        .output()
        .unwrap();
    let (code, stdout, stderr) = result(&out);
    assert_eq!((code, stdout.as_str()), (Some(0), "hi"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("cachier: warning: cache entry ")
            && stderr.ends_with("; left it in place (read-only) and ran the command\n"),
        "{stderr}"
    );
    assert_eq!((env.runs(), env.count_entries()), (2, 1));
    // A writer discards it and stores the fresh result.
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    assert_eq!(env.runs(), 3);
}

pub(super) fn read_only_waits_for_another_callers_claim(env: &Env) {
    let script = format!("echo $$ >> \"$COUNT\"; {}; echo done", until_go());
    let (owner, _) = spawn_watching_stderr(env.run_sh(&[], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    let (reader, lines) = spawn_watching_stderr(env.run_sh(&["--read-only", "--verbose"], &script));
    expect_line(&lines, "waiting for");
    touch(&env.path("go"));
    for child in [owner, reader] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), &b"done\n"[..])
        );
    }
    // The reader was served the owner's result, not a run of its own.
    assert_eq!(env.runs(), 1);
}

/// `[tiers.redis] read_only = true`: a laptop reads the team's Redis and
/// writes only its local tier.
#[cfg(feature = "redis")]
#[test]
fn a_read_only_tier_serves_and_is_never_written() {
    let Some(env) = Env::try_new(crate::backend::Backend::Redis) else {
        return;
    };
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    std::fs::write(env.path("config.toml"), "[tiers.redis]\nread_only = true\n").unwrap();
    let laptop = |text: &str| {
        let mut cmd = env.run_sh(&[], &counted(text));
        cmd.env("CACHIER_BACKEND", "file,redis");
        let out = cmd.output().unwrap();
        assert_eq!(result(&out), quiet(text));
    };
    // Served from Redis, and copied into the file tier.
    laptop("hi");
    assert_eq!(env.runs(), 1);
    // A miss is stored in the file tier only.
    laptop("new");
    laptop("new");
    assert_eq!(env.runs(), 2);
    let files = crate::backend::entry_files(env.dir.path()).len();
    assert_eq!((files, env.count_entries()), (2, 1));
}

/// Commands that only write refuse at once, rather than keep nothing.
#[test]
fn read_only_refuses_precache() {
    let env = Env::file();
    std::fs::write(env.path("out"), "x").unwrap();
    let out = env
        .cachier(&[
            "--read-only",
            "precache",
            "--stdout",
            "out",
            "--",
            "echo",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(
        result(&out),
        (
            Some(125),
            String::new(),
            "cachier: cannot precache: the cache is read-only (--read-only, \
             CACHIER_READ_ONLY or read_only); drop it to write\n"
                .to_string()
        )
    );
    assert_eq!(env.count_entries(), 0);
}

/// A read-only S3 caller writes no object at all: no probe of conditional
/// writes, no fold of the counters (which rewrites `counts/total` and
/// deletes the deltas it took in), whatever it serves or lists.
#[cfg(feature = "s3")]
#[test]
fn read_only_s3_leaves_the_bucket_as_it_was() {
    let Some(env) = Env::try_new(crate::backend::Backend::S3) else {
        return;
    };
    env.run_sh(&[], &counted("hi"))
        .assert()
        .code(0)
        .stdout("hi");
    let bucket = || crate::backend::s3_listing(env.dir.path(), "");
    let before = bucket();
    // A miss's delta, not folded yet.
    assert!(
        before
            .iter()
            .any(|(n, _)| n.starts_with("cachier/counts/d/")),
        "{before:?}"
    );
    for (text, runs) in [("hi", 1), ("other", 2)] {
        let out = env
            .run_sh(&["--read-only"], &counted(text))
            .output()
            .unwrap();
        assert_eq!(result(&out), quiet(text));
        assert_eq!(env.runs(), runs);
    }
    for args in [&["stats", "--json"][..], &["ls", "--json"], &["gc"]] {
        let mut cmd = env.cachier(args);
        cmd.env("CACHIER_READ_ONLY", "1");
        cmd.assert().code(0);
    }
    assert_eq!(bucket(), before);
    // The writer's miss is still there to count.
    assert_eq!(env.stat("sh", "misses"), 1);
}
