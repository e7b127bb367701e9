//! The Redis store's own behaviour on the shared test server: a dead owner
//! named and taken over, a lost middle chunk, server-side expiry, TLS.
use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, redis_prefix, redis_url, require};
use crate::harness::*;

fn single() -> redis::Connection {
    redis::Client::open(redis_url(false).unwrap())
        .and_then(|c| c.get_connection())
        .unwrap()
}

#[test]
fn killed_owner_is_named_then_taken_over() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    let script = format!("{}; {}; echo done", "echo $$ >> \"$COUNT\"", until_go());
    let (mut owner, _owner_lines) = spawn_watching_stderr(env.run_sh(&["-v"], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    let (waiter, lines) = spawn_watching_stderr(env.run_sh(&["-v"], &script));
    let line = expect_line(&lines, "waiting for");
    assert!(
        line.ends_with(&format!(" pid {}", owner.id())),
        "the waiter names the owner: {line}"
    );
    owner.kill().unwrap();
    owner.wait().unwrap();
    // The lease lapses, the waiter takes over and stores its result.
    await_until("the waiter takes over", || env.runs() == 2);
    touch(&env.path("go"));
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"done\n"[..])
    );
    env.run_sh(&[], &script).assert().code(0).stdout("done\n");
    assert_eq!(env.runs(), 2);
}

#[test]
fn a_lost_middle_chunk_is_discarded_and_recomputed() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    // Three chunks and a bit: 1 MiB each, raw.
    let script =
        "echo $$ >> \"$COUNT\"; head -c 3500000 /dev/zero | tr '\\0' x; wc -l < \"$COUNT\"";
    let first = env
        .run_sh(&[], script)
        .env("CACHIER_COMPRESSION", "none")
        .output()
        .unwrap();
    assert_eq!(first.stdout.len(), 3_500_002);
    let mut conn = single();
    let meta = format!(
        "{{{}:{}}}:m",
        redis_prefix(env.dir.path()),
        listed_key(&env)
    );
    let (generation, chunks): (String, u64) = redis::cmd("HMGET")
        .arg(&meta)
        .arg(&["gen", "chunks"])
        .query(&mut conn)
        .unwrap();
    assert_eq!(chunks, 4);
    let chunk = format!("{}:c:{generation}:1", meta.strip_suffix(":m").unwrap());
    let _: i64 = redis::cmd("DEL").arg(&chunk).query(&mut conn).unwrap();
    let out = env
        .run_sh(&[], script)
        .env("CACHIER_COMPRESSION", "none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.ends_with(b"x2\n"), "recomputed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("cachier: warning: cache entry ")
            && stderr.contains("a chunk is missing")
            && stderr.ends_with("discarded it and ran the command\n"),
        "{stderr}"
    );
    // The new result is served whole.
    let again = env
        .run_sh(&[], script)
        .env("CACHIER_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(again.stdout == out.stdout && again.stderr.is_empty());
    assert_eq!(env.runs(), 2);
}

#[test]
fn stale_after_gives_keys_a_server_side_expiry() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    let mut conn = single();
    let pttl = |conn: &mut redis::Connection, env: &Env| -> i64 {
        let meta = format!("{{{}:{}}}:m", redis_prefix(env.dir.path()), listed_key(env));
        redis::cmd("PTTL").arg(meta).query(conn).unwrap()
    };
    env.run_sh(&[], &counted("forever")).assert().code(0);
    assert_eq!(pttl(&mut conn, &env), -1, "no --stale-after: no expiry");
    env.cachier(&["clear"]).assert().code(0);
    env.run_sh(&["--stale-after", "1h"], &counted("an hour"))
        .assert()
        .code(0);
    let left = pttl(&mut conn, &env);
    // Stale after an hour, gone once stale as long again.
    assert!((3_600_000..=7_200_000).contains(&left), "{left}");
}

#[test]
fn tls_checks_the_certificate_unless_told_not_to() {
    let tls = std::env::var("CACHIER_TEST_REDIS_TLS_URL").unwrap_or_default();
    let ca = std::env::var("CACHIER_TEST_REDIS_TLS_CA").unwrap_or_default();
    if !require("redis tls", !tls.is_empty(), "CACHIER_TEST_REDIS_TLS_URL") {
        return;
    }
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    let run = |url: &str, ca: Option<&str>| {
        let mut cmd = env.run_sh(&[], &counted("secure"));
        cmd.env("CACHIER_REDIS_URL", url)
            .env_remove("SSL_CERT_FILE");
        if let Some(ca) = ca {
            cmd.env("SSL_CERT_FILE", ca);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            (out.status.code(), &out.stdout[..]),
            (Some(0), &b"secure"[..])
        );
        String::from_utf8(out.stderr).unwrap()
    };
    // A certificate nobody vouches for: one warning, the command runs.
    let stderr = run(&tls, None);
    assert!(
        stderr.starts_with("cachier: warning: cannot reach Redis at rediss://127.0.0.1:")
            && stderr.contains("certificate")
            && stderr.contains("SSL_CERT_FILE"),
        "{stderr}"
    );
    assert_eq!(env.runs(), 1);
    // Its CA trusted: stored over TLS, then served over TLS.
    assert_eq!(run(&tls, Some(&ca)), "");
    assert_eq!(run(&tls, Some(&ca)), "");
    assert_eq!(env.runs(), 2);
    // `#insecure` encrypts without checking.
    assert_eq!(run(&format!("{tls}#insecure"), None), "");
    assert_eq!(env.runs(), 2);
    assert_eq!(env.count_entries(), 1);
}

/// The one entry's key, as `ls --json` shows it.
fn listed_key(env: &Env) -> String {
    let listed = env.json(&["ls", "--json"]);
    listed[0]["key"].as_str().unwrap().to_string()
}
