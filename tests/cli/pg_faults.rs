//! PostgreSQL faults: the server going away mid-run, a bad URL or a newer
//! schema, and a password that must never be printed (a server that is not
//! there: unreachable.rs; one that hangs: silent.rs).
//!
//! "The server stops" is played by a TCP proxy the test cuts: from the
//! client's side a stopped server and a cut connection are the same closed
//! socket, and cutting our own proxy stops nobody else's test, so these
//! cases run in parallel with the suite on the one server `scripts/test`
//! starts, needing no private cluster (initdb, root) of their own.

use assert_cmd::assert::OutputAssertExt;

use crate::backend::{Backend, pg_test_url};
use crate::harness::*;
use crate::proxy::{in_front_of, server_gone_mid_run};

#[test]
fn server_gone_mid_run_leaves_the_command_intact() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    let url = pg_test_url(env.dir.path());
    let (proxy, via) = in_front_of(&url);
    let warning = server_gone_mid_run(&env, &proxy, "CACHIER_SQL_URL", &via, &url);
    assert!(!warning.contains("secret"), "{warning}");
}

#[test]
fn a_bad_url_is_one_warning_without_the_password() {
    let env = Env::file();
    for url in [
        "postgresql://u:hunter2pw@127.0.0.1:1/db?bogus=1",
        "postgresql://u:hunter2pw@127.0.0.1:1/db?sslmode=nonsense",
    ] {
        let out = env
            .run_sh(&[], &counted("hi"))
            .env("CACHIER_BACKEND", "sql")
            .env("CACHIER_SQL_URL", url)
            .output()
            .unwrap();
        assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("bad PostgreSQL URL"), "{stderr}");
        assert!(!stderr.contains("hunter2pw"), "{stderr}");
    }
}

#[test]
fn a_newer_schema_is_refused_clearly() {
    let Some(env) = Env::try_new(Backend::Postgres) else {
        return;
    };
    env.run_sh(&[], &counted("hi")).assert().code(0);
    crate::backend::pg_client(&pg_test_url(env.dir.path()))
        .execute("UPDATE cachier_schema_version SET version = 99", &[])
        .unwrap();
    let out = env.run_sh(&[], &counted("hi")).output().unwrap();
    assert_eq!((out.status.code(), &out.stdout[..]), (Some(0), &b"hi"[..]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cachier schema version 99, newer than this cachier's 1"),
        "{stderr}"
    );
    assert_eq!(env.runs(), 2, "the command ran, uncached");
}
