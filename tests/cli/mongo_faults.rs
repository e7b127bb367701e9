//! MongoDB faults: the server going away mid-run, a SIGKILLed owner, a
//! missing chunk, and a password that must never be printed (a server that
//! is not there: unreachable.rs).
//!
//! "The server stops" is played by a TCP proxy the test cuts, as in
//! pg_faults.rs: to the driver a stopped server and a cut connection are the
//! same closed socket, and cutting our own proxy stops nobody else's test.
//! The test server is a one-member replica set, so the proxied URL asks for
//! a direct connection.

use assert_cmd::assert::OutputAssertExt;
use mongodb::bson::{Document, doc};

use crate::backend::{Backend, mongo_test_db, mongo_test_url};
use crate::harness::*;
use crate::proxy::{in_front_of, server_gone_mid_run};

#[test]
fn server_gone_mid_run_leaves_the_command_intact() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    let url = mongo_test_url(env.dir.path());
    let (proxy, via) = in_front_of(&url);
    // Direct: the driver would otherwise find the server's own address in
    // its replica-set reply and bypass the proxy.
    let via = format!("{via}?directConnection=true");
    let warning = server_gone_mid_run(&env, &proxy, "CACHIER_MONGO_URL", &via, &url);
    assert!(
        warning.starts_with("cachier: warning: cannot store cache entry")
            && warning.contains("cannot reach MongoDB at"),
        "{warning}"
    );
}

#[test]
fn a_bad_url_is_a_usage_error_without_the_password() {
    let env = Env::file();
    for (url, says) in [
        ("http://u:hunter2pw@h/db", "must start with mongodb://"),
        (
            "mongodb+srv://u:hunter2pw@h/db",
            "mongodb+srv:// URLs are not supported",
        ),
        (
            "mongodb://u:hunter2pw@h/bad.name",
            "not a valid MongoDB database name",
        ),
    ] {
        let out = env
            .run_sh(&[], &counted("hi"))
            .env("CACHIER_BACKEND", "mongo")
            .env("CACHIER_MONGO_URL", url)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("hunter2pw"), "{stderr}");
    }
    assert_eq!(env.runs(), 0);
}

#[test]
fn killed_owner_is_taken_over_by_a_waiter() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    let script = format!("echo $$ >> \"$COUNT\"; {}; echo done", until_go());
    let (mut owner, _lines) = spawn_watching_stderr(env.run_sh(&["--verbose"], &script));
    await_until("the owner runs the command", || env.runs() == 1);
    let (waiter, lines) = spawn_watching_stderr(env.run_sh(&["--verbose"], &script));
    // The waiter names the owner, from its claim document.
    let line = expect_line(&lines, "waiting for");
    assert!(line.ends_with(&format!("pid {}", owner.id())), "{line}");
    owner.kill().unwrap();
    owner.wait().unwrap();
    // Once the lease lapses, the waiter claims the key and runs the command.
    await_until("the waiter takes over", || env.runs() == 2);
    let claims = mongo_test_db(env.dir.path()).collection::<Document>("cachier.claims");
    let claim = claims.find_one(doc! {}).run().unwrap().unwrap();
    assert_eq!(claim.get_i64("pid").unwrap(), i64::from(waiter.id()));
    touch(&env.path("go"));
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"done\n"[..])
    );
    // Released: no claim is left.
    assert_eq!(claims.count_documents(doc! {}).run().unwrap(), 0);
    env.run_sh(&[], &script).assert().stdout("done\n");
    assert_eq!(env.runs(), 2);
}

#[test]
fn a_missing_chunk_discards_the_entry_and_recomputes() {
    let Some(env) = Env::try_new(Backend::Mongo) else {
        return;
    };
    // 3 MiB of raw output: chunks 0, 1, 2 (and a last short one for the newline).
    let script = "echo $$ >> \"$COUNT\"; head -c 3145728 /dev/zero | tr '\\0' x; echo";
    let mut want = vec![b'x'; 3 << 20];
    want.push(b'\n');
    let out = env
        .run_sh(&[], script)
        .env("CACHIER_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(out.stdout == want);
    let chunks = mongo_test_db(env.dir.path()).collection::<Document>("cachier.chunks");
    assert_eq!(chunks.count_documents(doc! {}).run().unwrap(), 4);
    chunks.delete_one(doc! { "seq": 1 }).run().unwrap();
    let out = env
        .run_sh(&[], script)
        .env("CACHIER_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(out.stdout == want);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("is corrupt (a chunk is missing); discarded it and ran the command"),
        "{stderr}"
    );
    assert_eq!((env.runs(), env.count_entries()), (2, 1));
    // The new entry is whole, and the old generation's chunks are gone.
    assert_eq!(chunks.count_documents(doc! {}).run().unwrap(), 4);
    let out = env
        .run_sh(&[], script)
        .env("CACHIER_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(out.stdout == want && out.stderr.is_empty());
    assert_eq!(env.runs(), 2);
}
