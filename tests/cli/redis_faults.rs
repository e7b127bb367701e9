//! Redis faults: the server going away mid-run, a server that is not
//! there, a bad URL or prefix, and a password that must never be printed
//! (a server that hangs: silent.rs).
//!
//! "The server stops" is played by a TCP proxy the test cuts, as in
//! pg_faults.rs: from the client's side a stopped server and a cut
//! connection are the same closed socket, and cutting our own proxy stops
//! nobody else's test on the shared server.
use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, redis_url};
use crate::harness::*;
use crate::proxy::{closed_port, in_front_of, server_gone_mid_run};

#[test]
fn server_gone_mid_run_leaves_the_command_intact() {
    let Some(env) = Env::try_new(Backend::Redis) else {
        return;
    };
    let url = redis_url(false).unwrap();
    let (proxy, via) = in_front_of(&url);
    server_gone_mid_run(&env, &proxy, "CACHIER_REDIS_URL", &via, &url);
}

#[test]
fn unreachable_server_warns_once_and_never_prints_the_password() {
    let env = Env::file();
    let port = closed_port();
    let url = format!("redis://cachier:hunter2@127.0.0.1:{port}/2");
    let redis = |cmd: &mut std::process::Command| {
        cmd.env("CACHIER_BACKEND", "redis")
            .env("CACHIER_REDIS_URL", &url);
    };
    let mut run = env.run_sh(&[], &counted("hi"));
    redis(&mut run);
    let out = run.output().unwrap();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "cachier: warning: cannot reach Redis at redis://127.0.0.1:{port}/2"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // Where the cache lives, without the password.
    let mut path = env.cachier(&["path"]);
    redis(&mut path);
    path.assert()
        .code(0)
        .stdout(format!("redis://127.0.0.1:{port}/2\n"));
    // A management command fails, naming the server but not the password.
    let mut stats = env.cachier(&["stats"]);
    redis(&mut stats);
    let out = stats.output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot reach Redis"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // --strict: the command does not run.
    let mut strict = env.run_sh(&["--strict"], &counted("never"));
    redis(&mut strict);
    let out = strict.output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
    assert_eq!(env.runs(), 1);
}

#[test]
fn a_bad_url_or_prefix_is_a_usage_error_without_the_password() {
    let env = Env::file();
    for (url, prefix, says) in [
        (
            "redis://u:hunter2@127.0.0.1:notaport/0",
            "p",
            "CACHIER_REDIS_URL",
        ),
        ("http://u:hunter2@127.0.0.1:1/0", "p", "is not a Redis URL"),
        ("redis://u:hunter2@127.0.0.1:1/0", "a{b}", "may not hold"),
    ] {
        let out = env
            .run_sh(&[], &counted("hi"))
            .env("CACHIER_BACKEND", "redis")
            .env("CACHIER_REDIS_URL", url)
            .env("CACHIER_REDIS_PREFIX", prefix)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    assert_eq!(env.runs(), 0);
}
