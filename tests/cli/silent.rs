//! Servers that accept connections and never answer (a hung server, a
//! half-open load balancer), at connect or mid-run: every server backend
//! gives up within its documented bound, and the command's output and exit
//! code come through intact, with one warning line.
//!
//! The bounds asserted here are generous (10 s to the end of a run whose
//! server hangs at connect; an operation timeout plus slack mid-run): they
//! prove there is no hang, they do not measure speed.
use std::time::{Duration, Instant};

use crate::backend::{Backend, pg_test_url, redis_url};
use crate::harness::*;
use crate::proxy::{in_front_of, server_hangs_mid_run, silent_port};

/// `counted("hi")` with the `backend` cache at `url` (in `var`), a server
/// that never answers: the command runs once and prints its output, and
/// the run ends within 10 s. Returns the one line of stderr (which says
/// until when the outage breaker skips the server).
fn run_against_silent(backend: &str, var: &str, url: &str) -> String {
    let env = Env::file();
    let mut cmd = env.run_sh(&[], &counted("hi"));
    cmd.env("CACHIER_BACKEND", backend).env(var, url);
    let (out, _) = output_within(cmd, Duration::from_secs(10));
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    assert_eq!(env.runs(), 1);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn postgres_that_never_answers_is_given_up() {
    let port = silent_port();
    // With TLS (`prefer`) the client waits for the answer to its TLS
    // request; without, for the answer to its startup message.
    for query in ["", "?sslmode=disable"] {
        let url = format!("postgresql://u:hunter2pw@127.0.0.1:{port}/db{query}");
        let stderr = run_against_silent("sql", "CACHIER_SQL_URL", &url);
        assert!(
            stderr.starts_with(&format!(
                "cachier: warning: cannot reach PostgreSQL at postgresql://127.0.0.1:{port}/db: \
                 no answer within 2 s; skipping it until 2"
            )),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2pw"), "{stderr}");
    }
}

#[test]
fn redis_that_never_answers_is_given_up() {
    let port = silent_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let stderr = run_against_silent("redis", "CACHIER_REDIS_URL", &url);
    assert!(
        stderr.starts_with(&format!(
            "cachier: warning: cannot reach Redis at redis://127.0.0.1:{port}/0: \
             no answer within 1 s; skipping it until 2"
        )),
        "{stderr}"
    );
}

#[test]
fn a_redis_cluster_whose_seeds_never_answer_is_given_up_as_one() {
    // The client tries seeds one after another: six would cost about 2 s
    // each, were the whole not bounded.
    let urls: Vec<String> = (0..6)
        .map(|_| format!("redis://127.0.0.1:{}", silent_port()))
        .collect();
    let stderr = run_against_silent("redis", "CACHIER_REDIS_URL", &urls.join(","));
    assert!(
        stderr.starts_with("cachier: warning: cannot reach Redis at redis://127.0.0.1:")
            && stderr.contains(": no answer within 2.5 s; skipping it until 2"),
        "{stderr}"
    );
}

#[cfg(feature = "mongo")]
#[test]
fn mongo_that_never_answers_is_given_up() {
    let port = silent_port();
    let url = format!("mongodb://127.0.0.1:{port}/db");
    let stderr = run_against_silent("mongo", "CACHIER_MONGO_URL", &url);
    assert!(
        stderr.starts_with(&format!(
            "cachier: warning: cannot reach MongoDB at mongodb://127.0.0.1:{port}/db: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("running uncached"), "{stderr}");
}

#[cfg(feature = "s3")]
#[test]
fn s3_that_never_answers_is_given_up() {
    let port = silent_port();
    let env = Env::file();
    let mut cmd = env.run_sh(&[], &counted("hi"));
    cmd.env("CACHIER_BACKEND", "s3")
        .env("CACHIER_S3_URL", "s3://team/cache")
        .env("CACHIER_S3_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "hunter2pw");
    let (out, took) = output_within(cmd, Duration::from_secs(10));
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    assert_eq!(env.runs(), 1);
    let stderr = String::from_utf8(out.stderr).unwrap();
    // An outage: the breaker skips S3 for the next runs, and says so.
    let (failure, rest) = stderr.split_once("; skipping it until 2").unwrap();
    assert_eq!(
        failure,
        format!(
            "cachier: warning: cannot reach S3 at s3://team/cache (http://127.0.0.1:{port}): \
             no answer within 2 s"
        )
    );
    assert!(
        rest.ends_with(
            "Z (retry_after; --strict tries it now); running uncached (fix the cache, or pick \
             another with --backend, --cache-dir or --sql-url)\n"
        ),
        "{stderr}"
    );
    // One request's deadline, not one per step.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn postgres_hanging_mid_run_is_given_up() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    let url = pg_test_url(env.dir.path());
    let (proxy, via) = in_front_of(&url);
    let vars = ("CACHIER_SQL_URL", via.as_str(), url.as_str());
    let warning = server_hangs_mid_run(&env, &proxy, vars, Duration::from_secs(10));
    let place = format!("postgresql://127.0.0.1:{}/", proxy.port);
    assert!(
        warning.starts_with("cachier: warning: cannot store cache entry ")
            && warning.contains(&format!("PostgreSQL at {place}"))
            && warning.contains("did not answer within 5 s"),
        "{warning}"
    );
    assert!(!warning.contains("secret"), "{warning}");
}

#[test]
fn postgres_hanging_under_a_waiter_is_given_up() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    let url = pg_test_url(env.dir.path());
    let (proxy, via) = in_front_of(&url);
    let script = format!("echo $$ >> \"$COUNT\"; {}; echo done", until_go());
    let (owner, _owner_lines) = spawn_watching_stderr(env.run_sh(&[], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    let mut cmd = env.run_sh(&["--verbose"], &script);
    cmd.env("CACHIER_SQL_URL", &via);
    let (waiter, lines) = spawn_watching_stderr(cmd);
    expect_line(&lines, "waiting for");
    proxy.freeze();
    let hung = Instant::now();
    // Given up within one lock request and a statement's deadline (2 + 5 s),
    // the waiter runs the command itself.
    await_until("the waiter runs the command", || env.runs() == 2);
    assert!(
        hung.elapsed() < Duration::from_secs(15),
        "{:?}",
        hung.elapsed()
    );
    touch(&env.path("go"));
    for child in [waiter, owner] {
        let out = wait_within(child, Duration::from_secs(30));
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), &b"done\n"[..])
        );
    }
    let warnings: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("cachier: warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    // (Within 5 s of a statement around the lock request, or 7 s of it.)
    assert!(
        warnings[0].starts_with("cachier: warning: PostgreSQL at ")
            && warnings[0].contains(" did not answer within "),
        "{warnings:?}"
    );
    assert_eq!(env.count_entries(), 1, "the owner stored its result");
}

#[test]
fn redis_hanging_mid_run_is_given_up() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    let url = redis_url(false).unwrap();
    let (proxy, via) = in_front_of(&url);
    let vars = ("CACHIER_REDIS_URL", via.as_str(), url.as_str());
    let warning = server_hangs_mid_run(&env, &proxy, vars, Duration::from_secs(10));
    assert!(
        warning.starts_with("cachier: warning: cannot store cache entry ")
            && warning.contains("did not answer within 5 s"),
        "{warning}"
    );
}

#[cfg(feature = "mongo")]
#[test]
fn mongo_hanging_mid_run_is_given_up() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    let url = crate::backend::mongo_test_url(env.dir.path());
    let (proxy, via) = in_front_of(&url);
    // Direct: the driver would otherwise find the server's own address in
    // its replica-set reply and bypass the proxy.
    let via = format!("{via}?directConnection=true");
    let vars = ("CACHIER_MONGO_URL", via.as_str(), url.as_str());
    // The operation timeout is 10 s.
    let warning = server_hangs_mid_run(&env, &proxy, vars, Duration::from_secs(20));
    assert!(
        warning.starts_with("cachier: warning: cannot store cache entry ")
            && warning.contains("no answer within 10 s"),
        "{warning}"
    );
}
