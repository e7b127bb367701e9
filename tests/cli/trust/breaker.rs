//! The outage breaker: a server that failed is skipped by the next runs of
//! the same user (their own runtime dir here) for `retry_after`, with one
//! warning saying until when; `--strict` tries it anyway; a stack skips
//! only the failed tier. Output and exit codes stay the command's.
use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::proxy::{closed_port, silent_port};

const FIX: &str = "; running uncached (fix the cache, or pick another with --backend, \
                   --cache-dir or --sql-url)\n";

/// `counted("hi")` against Redis at `url`, in `backends` (a stack or not).
fn against(env: &Env, backends: &str, url: &str) -> Command {
    let mut cmd = env.run_sh(&[], &counted("hi"));
    cmd.env("CACHIER_BACKEND", backends)
        .env("CACHIER_REDIS_URL", url);
    cmd
}

/// Runs `cmd` (bounded): the command's exact output, and the one warning.
fn one_warning(cmd: Command) -> String {
    let (out, _) = output_within(cmd, Duration::from_secs(20));
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// The breaker's marks in the test's runtime dir, as text.
fn marks(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.path("run/cachier"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("breaker-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

fn refused_then_skipped(url: &str, shown: &str) {
    let env = Env::file();
    let first = one_warning(against(&env, "redis", url));
    let failure = format!("cachier: warning: cannot reach Redis at {shown}: ");
    let until = format!("Z (retry_after; --strict tries it now){FIX}");
    // The failing run says already until when the next ones skip it.
    assert!(
        first.starts_with(&failure) && first.ends_with(&until),
        "{first}"
    );
    let (reason, _) = first["cachier: warning: ".len()..]
        .split_once("; skipping it until 2")
        .unwrap();
    let marks = marks(&env);
    assert_eq!(marks.len(), 1);
    assert!(!marks[0].contains("hunter2pw"), "{}", marks[0]);
    // The next run does not try: it says why, and until when.
    let second = one_warning(against(&env, "redis", url));
    assert!(
        second.starts_with(&format!("cachier: warning: {reason}; skipping it until 2"))
            && second.ends_with(&until),
        "{second}"
    );
    // --strict tries it, and fails: 125, the command not run.
    let mut strict = env.run_sh(&["--strict"], &counted("hi"));
    strict
        .env("CACHIER_BACKEND", "redis")
        .env("CACHIER_REDIS_URL", url);
    let (out, _) = output_within(strict, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("cachier: cannot reach Redis at {shown}: ")),
        "{stderr}"
    );
    assert_eq!(env.runs(), 2);
    // A zero retry_after turns the breaker off.
    let mut again = against(&env, "redis", url);
    again.env("CACHIER_RETRY_AFTER", "0");
    let off = one_warning(again);
    assert!(
        off.starts_with(&failure) && off.ends_with(FIX) && !off.contains("skipping"),
        "{off}"
    );
}

#[test]
fn a_refused_server_is_skipped_until_retry_after() {
    let port = closed_port();
    refused_then_skipped(
        &format!("redis://cachier:hunter2pw@127.0.0.1:{port}/0"),
        &format!("redis://127.0.0.1:{port}/0"),
    );
}

#[test]
fn a_silent_server_is_skipped_until_retry_after() {
    let port = silent_port();
    refused_then_skipped(
        &format!("redis://cachier:hunter2pw@127.0.0.1:{port}/0"),
        &format!("redis://127.0.0.1:{port}/0"),
    );
}

#[test]
fn a_stack_skips_only_the_failed_tier() {
    let env = Env::file();
    let url = format!("redis://127.0.0.1:{}/0", closed_port());
    let first = one_warning(against(&env, "redis,file", &url));
    assert!(
        first.starts_with("cachier: warning: tier redis: cannot reach Redis"),
        "{first}"
    );
    // The file tier stored it and serves it; redis is not tried.
    let second = one_warning(against(&env, "redis,file", &url));
    assert!(
        second.starts_with("cachier: warning: tier redis: cannot reach Redis")
            && second.contains("; skipping it until 2")
            && second.ends_with("; skipping it, the other tiers still serve\n"),
        "{second}"
    );
    assert_eq!(env.runs(), 1);
}

/// S3 marks an unreachable endpoint as an outage like the other servers
/// (the secret never reaches the mark).
#[cfg(feature = "s3")]
#[test]
fn an_unreachable_s3_is_skipped_until_retry_after() {
    let env = Env::file();
    let port = closed_port();
    let s3 = || {
        let mut cmd = env.run_sh(&[], &counted("hi"));
        cmd.env("CACHIER_BACKEND", "s3")
            .env("CACHIER_S3_URL", "s3://team/cache")
            .env("CACHIER_S3_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "hunter2pw");
        cmd
    };
    let failure =
        format!("cachier: warning: cannot reach S3 at s3://team/cache (http://127.0.0.1:{port}): ");
    let first = one_warning(s3());
    assert!(
        first.starts_with(&failure) && first.contains("; skipping it until 2"),
        "{first}"
    );
    let marks = marks(&env);
    assert_eq!(marks.len(), 1);
    assert!(!marks[0].contains("hunter2pw"), "{}", marks[0]);
    let second = one_warning(s3());
    assert!(
        second.starts_with(&failure) && second.contains("; skipping it until 2"),
        "{second}"
    );
    assert_eq!(env.runs(), 2);
}
