//! Redis faults: the server going away mid-run, a bad URL or prefix, and
//! a password that must never be printed (a server that is not there:
//! unreachable.rs; one that hangs: silent.rs).
//!
//! "The server stops" is played by a TCP proxy the test cuts, as in
//! pg_faults.rs: from the client's side a stopped server and a cut
//! connection are the same closed socket, and cutting our own proxy stops
//! nobody else's test on the shared server.

use crate::backend::{Backend, redis_url};
use crate::harness::*;
use crate::proxy::{in_front_of, server_gone_mid_run};

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
